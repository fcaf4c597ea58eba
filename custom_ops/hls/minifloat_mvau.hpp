// minifinn MinifloatMVAU, HLS compute template (Vitis HLS; simulates with g++ and the ap_types headers).
// Same arithmetic and folding as custom_ops/rtl/minifloat_mvau.v: per input vector NF = MH/PE neuron folds x
// SF = MW/SIMD synapse folds; the input vector is buffered during nf = 0; weights[nf*SF+sf] holds
// W[sf*SIMD+i][nf*PE+p] at bits (p*SIMD+i)*WB; exact PE accumulators (mf_dotp); NO_ACT ? acc :
// codes[#{i : acc >= thresholds[ch][i]}].
#ifndef MINIFINN_MINIFLOAT_MVAU_HPP
#define MINIFINN_MINIFLOAT_MVAU_HPP

#include <ap_int.h>
#include <hls_stream.h>
#include "mf_mac.hpp"

template <unsigned MW, unsigned MH, unsigned PE, unsigned SIMD,
          unsigned AB, unsigned AE, bool AS, unsigned WB, unsigned WE, bool WS,
          unsigned ACC, bool NO_ACT, unsigned NT, unsigned CB, unsigned OB>
void minifloat_mvau(hls::stream<ap_uint<SIMD * AB> > &in, hls::stream<ap_uint<PE * OB> > &out,
                    const ap_uint<PE * SIMD * WB> weights[(MH / PE) * (MW / SIMD)],
                    const ap_int<ACC> thresholds[MH][NT], const ap_uint<OB> codes[NT + 1], unsigned reps) {
    const unsigned NF = MH / PE, SF = MW / SIMD;
    ap_uint<SIMD * AB> ibuf[SF];
    ap_int<ACC> acc[PE];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 1
    for (unsigned r = 0; r < reps; r++) {
        for (unsigned nf = 0; nf < NF; nf++) {
            for (unsigned sf = 0; sf < SF; sf++) {
#pragma HLS PIPELINE II = 1
                ap_uint<SIMD * AB> a;
                if (nf == 0) {
                    a = in.read();
                    ibuf[sf] = a;
                } else {
                    a = ibuf[sf];
                }
                const ap_uint<PE * SIMD * WB> w = weights[nf * SF + sf];
                for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
                    ap_uint<SIMD * WB> wp = w(p * SIMD * WB + SIMD * WB - 1, p * SIMD * WB);
                    ap_int<ACC> sum = mf_dotp<SIMD, AB, AE, AS, WB, WE, WS, ACC>(a, wp);
                    acc[p] = (sf == 0 ? ap_int<ACC>(0) : acc[p]) + sum;
                }
                if (sf == SF - 1) {
                    ap_uint<PE * OB> o = 0;
                    for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
                        if (NO_ACT) {
                            o(p * OB + OB - 1, p * OB) = ap_uint<OB>(acc[p]);
                        } else {
                            ap_uint<CB> cnt = mf_threshold<NT, ACC, CB>(acc[p], thresholds[nf * PE + p]);
                            o(p * OB + OB - 1, p * OB) = codes[cnt];
                        }
                    }
                    out.write(o);
                }
            }
        }
    }
}

// dynamic_input = 1: for each of `groups` groups, read the NF*SF matrix words (weight-ROM layout) from `win` into a
// buffer, then run the same datapath on the group's `vecs` input vectors.
template <unsigned MW, unsigned MH, unsigned PE, unsigned SIMD,
          unsigned AB, unsigned AE, bool AS, unsigned WB, unsigned WE, bool WS,
          unsigned ACC, bool NO_ACT, unsigned NT, unsigned CB, unsigned OB>
void minifloat_mvau_dyn(hls::stream<ap_uint<SIMD * AB> > &in, hls::stream<ap_uint<PE * SIMD * WB> > &win,
                        hls::stream<ap_uint<PE * OB> > &out, const ap_int<ACC> thresholds[MH][NT],
                        const ap_uint<OB> codes[NT + 1], unsigned groups, unsigned vecs) {
    ap_uint<PE * SIMD * WB> wbuf[(MH / PE) * (MW / SIMD)];
    for (unsigned g = 0; g < groups; g++) {
        for (unsigned k = 0; k < (MH / PE) * (MW / SIMD); k++) {
#pragma HLS PIPELINE II = 1
            wbuf[k] = win.read();
        }
        minifloat_mvau<MW, MH, PE, SIMD, AB, AE, AS, WB, WE, WS, ACC, NO_ACT, NT, CB, OB>(in, out, wbuf, thresholds,
                                                                                          codes, vecs);
    }
}

#endif
