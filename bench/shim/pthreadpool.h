// Debian's libxnnpack-dev includes <pthreadpool.h>, which Debian does not ship.
// These are the only declarations the benchmark needs (libpthreadpool.so.0's ABI).
#pragma once
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef struct pthreadpool* pthreadpool_t;
pthreadpool_t pthreadpool_create(size_t threads_count);
void pthreadpool_destroy(pthreadpool_t threadpool);
#ifdef __cplusplus
}
#endif
