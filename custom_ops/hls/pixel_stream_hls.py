"""PixelStreamHLS: the HLS backend of the sliding-window, max-pool and global-pool ops (custom_ops/hls/stream_ops.hpp)
with their stream codec (``lanes()`` codes per word, accumulators as two's complement)."""

from custom_ops.hls.stream_backend import HLSStreamBackend
from custom_ops.stream_codecs import PixelCodec


class PixelStreamHLS(PixelCodec, HLSStreamBackend):
    HEADERS = ("stream_ops.hpp",)
