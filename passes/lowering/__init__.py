"""The lowering walk of ``FoldScalesIntoThresholds`` (passes/streamline.py), by job:

* ``state``: the per-tensor states (``Vals``, ``Aff``, ``Flt``) and their exact rational algebra;
* ``walker``: the walk in graph order, dispatch, emission of nodes and constants, float islands;
* ``handler``: the contract of an op handler (``Refused``);
* ``handlers``: the dispatch table, merged from ``quantize`` (QuantizeToFormat), ``linear`` (Mul, Div, Add, Sub,
  Relu, BatchNormalization), ``matrix`` (MatMul, Gemm, Conv), ``pooling`` (GlobalAveragePool, ReduceMean,
  AveragePool) and ``movement`` (layout ops, MaxPool, Gather, Slice, Pad).
"""
