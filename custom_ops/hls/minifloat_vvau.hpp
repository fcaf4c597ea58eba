// minifinn MinifloatVVAU, HLS compute template (Vitis HLS; simulate with g++ and the ap_types headers).
// Same arithmetic and folding as custom_ops/rtl/minifloat_vvau.v: C = NF*PE channels, K = SF*SIMD kernel positions,
// SIMD = 1 or NF = 1; input word sf*NF + nf (one per cycle, the sliding-window stream's order) holds at lane
// i*PE + p the window code of kernel position sf*SIMD + i, channel nf*PE + p, the ROM word weights[sf*NF + nf] the
// weight code for the same lane. PE p adds its SIMD exact products (mf_dotp) to its accumulator of channel group nf
// (acc[nf][p], cleared at sf = 0); after the last sf the PE results leave:
// NO_ACT ? acc : codes[#{i : acc >= thresholds[ch][i]}].
#ifndef MINIFINN_MINIFLOAT_VVAU_HPP
#define MINIFINN_MINIFLOAT_VVAU_HPP

#include <ap_int.h>
#include <hls_stream.h>
#include "mf_mac.hpp"

template <unsigned K, unsigned C, unsigned PE, unsigned SIMD,
          unsigned AB, unsigned AE, bool AS, unsigned WB, unsigned WE, bool WS,
          unsigned ACC, bool NO_ACT, unsigned NT, unsigned CB, unsigned OB>
void minifloat_vvau(hls::stream<ap_uint<SIMD * PE * AB> > &in, hls::stream<ap_uint<PE * OB> > &out,
                    const ap_uint<SIMD * PE * WB> weights[(C / PE) * (K / SIMD)],
                    const ap_int<ACC> thresholds[C][NT], const ap_uint<OB> codes[NT + 1], unsigned reps) {
    const unsigned NF = C / PE, SF = K / SIMD;
    ap_int<ACC> acc[NF][PE];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 2
    for (unsigned r = 0; r < reps; r++) {
        for (unsigned sf = 0; sf < SF; sf++) {
            for (unsigned nf = 0; nf < NF; nf++) {
#pragma HLS PIPELINE II = 1
                ap_uint<SIMD * PE * AB> a = in.read();
                ap_uint<SIMD * PE * WB> w = weights[sf * NF + nf];
                ap_uint<PE * OB> o = 0;
                for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
                    ap_uint<SIMD * AB> ap = 0;
                    ap_uint<SIMD * WB> wp = 0;
                    for (unsigned i = 0; i < SIMD; i++) {
#pragma HLS UNROLL
                        ap(i * AB + AB - 1, i * AB) = a((i * PE + p) * AB + AB - 1, (i * PE + p) * AB);
                        wp(i * WB + WB - 1, i * WB) = w((i * PE + p) * WB + WB - 1, (i * PE + p) * WB);
                    }
                    ap_int<ACC> sum = (sf == 0 ? ap_int<ACC>(0) : acc[nf][p]) +
                                      mf_dotp<SIMD, AB, AE, AS, WB, WE, WS, ACC>(ap, wp);
                    acc[nf][p] = sum;
                    if (NO_ACT) {
                        o(p * OB + OB - 1, p * OB) = ap_uint<OB>(sum);
                    } else {
                        ap_uint<CB> cnt = mf_threshold<NT, ACC, CB>(sum, thresholds[nf * PE + p]);
                        o(p * OB + OB - 1, p * OB) = codes[cnt];
                    }
                }
                if (sf == SF - 1) out.write(o);
            }
        }
    }
}

#endif
