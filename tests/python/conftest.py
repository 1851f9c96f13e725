# Every run's workspace starts as NaNs (src/operator.cpp), so that a kernel
# which reads scratch it did not write fails these tests every time; set
# before any test module imports tconv (and inherited by the CLI they start).
import os

os.environ.setdefault("TCONV_POISON_WORKSPACE", "1")
