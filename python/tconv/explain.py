"""tconv.explain: one small 1-D or 2-D (transposed) convolution, drawn.

    e = tconv.explain("conv_transpose", input_shape=(3, 3), kernel_shape=(3, 3), stride=2)
    e            # in Jupyter: the picture (grids, overlap heat map, matrix and its transpose)
    e.matrix     # flat output = e.matrix @ flat input
    e.overlap    # kernel taps landing on each output cell
    print(e.text)

Given `input` and/or `weight` arrays (one channel: [H, W], or [1, 1, H, W] as
tconv.conv takes), the cells show their values and `e.output` is what
tconv.conv / tconv.conv_transpose return for them.
"""

import numpy as np

# Imported at the end of tconv/__init__.py, once these helpers exist.
from . import _array, _params, _spatial, _tconv


def _shape(name, value):
    """An optional size or cell: [] when left out, else as tconv's spatial parameters are read."""
    return [] if value is None else _spatial(name, value)


class Explanation:
    """What tconv.explain returns; Jupyter displays it as its SVG."""

    def __init__(self, parts):
        self._parts = parts

    matrix = property(lambda self: self._parts["matrix"], doc="[output cells, input cells]: flat output = matrix @ flat input")
    overlap = property(lambda self: self._parts["overlap"], doc="kernel taps landing on each output cell")
    output = property(lambda self: self._parts["output"], doc="output values, or None without an input")
    kernel = property(lambda self: self._parts["kernel"], doc="kernel values (1, 2, ... when no weight was given)")
    touched = property(lambda self: self._parts["touched"], doc="per flat input cell, the flat output cells it reaches")
    text = property(lambda self: self._parts["text"], doc="the explanation as terminal text")
    svg = property(lambda self: self._parts["svg"], doc="the picture, one SVG document")

    def _repr_svg_(self):
        return self.svg

    def __repr__(self):
        return self.text


def explain(op, input_shape=None, kernel_shape=None, stride=1, padding=0, output_padding=0, dilation=1,
            input=None, weight=None, highlight=None):
    """Explain `op` ('conv' or 'conv_transpose') on one channel; shapes are spatial ((H, W) or (L,)) and may be
    left out when `input` / `weight` arrays are given. `highlight` is the input cell whose window is drawn."""
    arrays = [None if a is None else np.ascontiguousarray(_array(name, a))
              for name, a in (("input", input), ("weight", weight))]
    return Explanation(_tconv.explain(op, _shape("input_shape", input_shape), _shape("kernel_shape", kernel_shape),
                                      _params(stride, padding, output_padding, dilation, 1), arrays[0], arrays[1],
                                      None if highlight is None else _shape("highlight", highlight)))
