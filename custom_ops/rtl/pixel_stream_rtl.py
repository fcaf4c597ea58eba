"""PixelStreamRTL: the Verilog backend of the sliding-window, max-pool and global-pool cores with their stream codec
(``lanes()`` codes per word, accumulators as two's complement)."""

from custom_ops.rtl.stream_backend import RTLStreamBackend
from custom_ops.stream_codecs import PixelCodec


class PixelStreamRTL(PixelCodec, RTLStreamBackend):
    pass
