// minifinn data-mover and pooling ops, HLS compute templates (Vitis HLS; simulate with g++ and ap_types).
// Contracts: custom_ops/minifloat_conv_inp_gen.py, minifloat_maxpool.py, minifloat_global_acc_pool.py,
// minifloat_reorder.py. Words hold L lanes of B-bit codes, lane 0 in the least significant bits.
#ifndef MINIFINN_STREAM_OPS_HPP
#define MINIFINN_STREAM_OPS_HPP

#include <ap_int.h>
#include <hls_stream.h>

// sliding window with padding (every padded element the code PAD): frame buffer, windows in (oh, ow, kh, kw, cf) order
template <unsigned H, unsigned W, unsigned C, unsigned SIMD, unsigned B, unsigned KH, unsigned KW, unsigned SH,
          unsigned SW, unsigned DH, unsigned DW, unsigned PT, unsigned PL, unsigned OH, unsigned OW, unsigned PAD = 0>
void mf_conv_inp_gen(hls::stream<ap_uint<SIMD * B> > &in, hls::stream<ap_uint<SIMD * B> > &out) {
    const unsigned CF = C / SIMD;
    static ap_uint<SIMD * B> buf[H * W * CF];
    ap_uint<SIMD * B> padword = 0;
    for (unsigned p = 0; p < SIMD; p++) padword |= ap_uint<SIMD * B>(ap_uint<B>(PAD)) << (p * B);
    for (unsigned i = 0; i < H * W * CF; i++) {
#pragma HLS PIPELINE II = 1
        buf[i] = in.read();
    }
    for (unsigned oh = 0; oh < OH; oh++)
        for (unsigned ow = 0; ow < OW; ow++)
            for (unsigned kh = 0; kh < KH; kh++)
                for (unsigned kw = 0; kw < KW; kw++)
                    for (unsigned cf = 0; cf < CF; cf++) {
#pragma HLS PIPELINE II = 1
                        unsigned r = oh * SH + kh * DH, c = ow * SW + kw * DW;  // padded coordinates
                        bool pad = r < PT || r >= PT + H || c < PL || c >= PL + W;
                        out.write(pad ? padword : buf[((r - PT) * W + (c - PL)) * CF + cf]);
                    }
}

// value-order key of a code: KIND 0 sign-magnitude minifloat, 1 signed integer, 2 unsigned integer
template <unsigned B, unsigned KIND>
ap_int<B + 1> mf_key(ap_uint<B> c) {
#pragma HLS INLINE
    if (KIND == 0) {
        ap_int<B + 1> mag = ap_uint<B - 1>(c);
        return c[B - 1] ? ap_int<B + 1>(-mag) : mag;
    }
    if (KIND == 1) return ap_int<B>(c);
    return ap_int<B + 1>(c);
}

// non-overlapping KHxKW max pooling (floor mode): running maxima of the current window row
template <unsigned H, unsigned W, unsigned C, unsigned PE, unsigned B, unsigned KH, unsigned KW, unsigned KIND>
void mf_maxpool(hls::stream<ap_uint<PE * B> > &in, hls::stream<ap_uint<PE * B> > &out) {
    const unsigned CF = C / PE, OH = H / KH, OW = W / KW;
    static ap_uint<PE * B> row[OW * CF];
    for (unsigned h = 0; h < H; h++)
        for (unsigned w = 0; w < W; w++)
            for (unsigned cf = 0; cf < CF; cf++) {
#pragma HLS PIPELINE II = 1
                ap_uint<PE * B> x = in.read();
                if (h >= OH * KH || w >= OW * KW) continue;
                unsigned ow = w / KW;
                bool first = (h % KH == 0) && (w % KW == 0);
                ap_uint<PE * B> prev = row[ow * CF + cf], best = 0;
                for (unsigned p = 0; p < PE; p++) {
                    ap_uint<B> a = prev >> (p * B), b = x >> (p * B);
                    ap_uint<B> m = (first || mf_key<B, KIND>(b) > mf_key<B, KIND>(a)) ? b : a;
                    best |= ap_uint<PE * B>(m) << (p * B);
                }
                if (h % KH == KH - 1 && w % KW == KW - 1) out.write(best);
                else row[ow * CF + cf] = best;
            }
}

// exact per-channel sum over NPIX pixels; dec: code -> the format's integer
template <unsigned NPIX, unsigned C, unsigned PE, unsigned B, unsigned DW, unsigned ACC>
void mf_global_acc_pool(hls::stream<ap_uint<PE * B> > &in, hls::stream<ap_uint<PE * ACC> > &out,
                        const ap_int<DW> dec[1 << B]) {
    const unsigned CF = C / PE;
    static ap_int<ACC> acc[CF][PE];
    for (unsigned px = 0; px < NPIX; px++)
        for (unsigned cf = 0; cf < CF; cf++) {
#pragma HLS PIPELINE II = 1
            ap_uint<PE * B> x = in.read();
            ap_uint<PE * ACC> o = 0;
            for (unsigned p = 0; p < PE; p++) {
                ap_int<ACC> s = (px == 0 ? ap_int<ACC>(0) : acc[cf][p]) + dec[ap_uint<B>(x >> (p * B))];
                acc[cf][p] = s;
                o |= ap_uint<PE * ACC>(ap_uint<ACC>(s)) << (p * ACC);
            }
            if (px == NPIX - 1) out.write(o);
        }
}

// data move through an address ROM: per output word an input word address, or bit 31 set and the index of a word of
// the constant ROM (padding and constants; word 0 zeros)
template <unsigned WORDS, unsigned OUT_WORDS, unsigned WIDTH, unsigned CONST_WORDS>
void mf_reorder(hls::stream<ap_uint<WIDTH> > &in, hls::stream<ap_uint<WIDTH> > &out,
                const ap_uint<32> addr[OUT_WORDS], const ap_uint<WIDTH> consts[CONST_WORDS]) {
    static ap_uint<WIDTH> buf[WORDS];
    for (unsigned i = 0; i < WORDS; i++) {
#pragma HLS PIPELINE II = 1
        buf[i] = in.read();
    }
    for (unsigned k = 0; k < OUT_WORDS; k++) {
#pragma HLS PIPELINE II = 1
        ap_uint<32> e = addr[k];
        out.write(e[31] ? consts[ap_uint<31>(e)] : buf[ap_uint<31>(e)]);
    }
}

#endif
