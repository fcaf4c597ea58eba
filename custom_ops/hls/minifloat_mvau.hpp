// minifinn MinifloatMVAU, HLS compute templates (Vitis HLS; simulate with g++ and the ap_types headers).
// Same arithmetic and folding as custom_ops/rtl/minifloat_mvau.v: per input vector NF = MH/PE neuron folds x
// SF = MW/SIMD synapse folds, one (nf, sf) step per cycle; the input vector is buffered during nf = 0; the weight word
// of step (nf, sf) holds W[sf*SIMD+i][nf*PE+p] at bits (p*SIMD+i)*WB; exact PE accumulators (mf_dotp_pe: fabric
// products, or with USE_DSP DSP48 products packed per GROUPS/FIELD/PACK_BITS, custom_ops/mac/packing.py);
// NO_ACT ? acc : codes[#{i : acc >= thresholds[ch][i]}].
//   minifloat_mvau      embedded weights: weights[nf*SF+sf] is that word (ROM).
//   minifloat_mvau_dyn  dynamic_input: per group, the matrix arrives on `win` in FINN's mem_mode "dynamic" order
//                       (rows k = 0..MW-1, per row NF words of PE codes W[k][nf*PE+p], p = 0 in the LSBs), is
//                       written into the caller's SIMD banks wbuf (bank k % SIMD, address nf*SF + k / SIMD; the top
//                       function partitions dim 1 and binds the storage per ram_style), then the group's `vecs`
//                       input vectors run on the buffered matrix.
//   minifloat_mvau_ext  mem_mode "external": the word of step (nf, sf), laid out as the ROM word, arrives on `win`
//                       (from external memory), one per step, the whole matrix again for every input vector.
#ifndef MINIFINN_MINIFLOAT_MVAU_HPP
#define MINIFINN_MINIFLOAT_MVAU_HPP

#include <ap_int.h>
#include <hls_stream.h>
#include "mf_mac.hpp"

// One (nf, sf) step of the datapath: PE dot products of the SIMD activations with the weight word, accumulate,
// and after the last sf of a neuron fold write its PE results.
template <unsigned MH, unsigned PE, unsigned SIMD, unsigned SF,
          unsigned AB, unsigned AE, bool AS, unsigned WB, unsigned WE, bool WS,
          unsigned ACC, bool NO_ACT, unsigned NT, unsigned CB, unsigned OB,
          bool USE_DSP, unsigned GROUPS, unsigned FIELD, unsigned PACK_BITS>
void mvau_step(ap_uint<SIMD * AB> a, ap_uint<PE * SIMD * WB> w, unsigned nf, unsigned sf, ap_int<ACC> acc[PE],
               const ap_int<ACC> thresholds[MH][NT], const ap_uint<OB> codes[NT + 1],
               hls::stream<ap_uint<PE * OB> > &out) {
#pragma HLS INLINE
    ap_int<ACC> sums[PE];
#pragma HLS ARRAY_PARTITION variable = sums complete dim = 1
    mf_dotp_pe<PE, SIMD, AB, AE, AS, WB, WE, WS, ACC, USE_DSP, GROUPS, FIELD, PACK_BITS>(a, w, sums);
    for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
        acc[p] = (sf == 0 ? ap_int<ACC>(0) : acc[p]) + sums[p];
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

template <unsigned MW, unsigned MH, unsigned PE, unsigned SIMD,
          unsigned AB, unsigned AE, bool AS, unsigned WB, unsigned WE, bool WS,
          unsigned ACC, bool NO_ACT, unsigned NT, unsigned CB, unsigned OB,
          bool USE_DSP, unsigned GROUPS, unsigned FIELD, unsigned PACK_BITS>
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
                mvau_step<MH, PE, SIMD, MW / SIMD, AB, AE, AS, WB, WE, WS, ACC, NO_ACT, NT, CB, OB, USE_DSP, GROUPS,
                  FIELD, PACK_BITS>(
                    a, weights[nf * SF + sf], nf, sf, acc, thresholds, codes, out);
            }
        }
    }
}

template <unsigned MW, unsigned MH, unsigned PE, unsigned SIMD,
          unsigned AB, unsigned AE, bool AS, unsigned WB, unsigned WE, bool WS,
          unsigned ACC, bool NO_ACT, unsigned NT, unsigned CB, unsigned OB,
          bool USE_DSP, unsigned GROUPS, unsigned FIELD, unsigned PACK_BITS>
void minifloat_mvau_ext(hls::stream<ap_uint<SIMD * AB> > &in, hls::stream<ap_uint<PE * SIMD * WB> > &win,
                        hls::stream<ap_uint<PE * OB> > &out, const ap_int<ACC> thresholds[MH][NT],
                        const ap_uint<OB> codes[NT + 1], unsigned reps) {
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
                mvau_step<MH, PE, SIMD, MW / SIMD, AB, AE, AS, WB, WE, WS, ACC, NO_ACT, NT, CB, OB, USE_DSP, GROUPS,
                  FIELD, PACK_BITS>(
                    a, win.read(), nf, sf, acc, thresholds, codes, out);
            }
        }
    }
}

template <unsigned MW, unsigned MH, unsigned PE, unsigned SIMD,
          unsigned AB, unsigned AE, bool AS, unsigned WB, unsigned WE, bool WS,
          unsigned ACC, bool NO_ACT, unsigned NT, unsigned CB, unsigned OB,
          bool USE_DSP, unsigned GROUPS, unsigned FIELD, unsigned PACK_BITS>
void minifloat_mvau_dyn(hls::stream<ap_uint<SIMD * AB> > &in, hls::stream<ap_uint<PE * WB> > &win,
                        hls::stream<ap_uint<PE * OB> > &out,
                        ap_uint<PE * WB> wbuf[SIMD][(MH / PE) * (MW / SIMD)],  // the caller's matrix buffer
                        const ap_int<ACC> thresholds[MH][NT], const ap_uint<OB> codes[NT + 1], unsigned groups,
                        unsigned vecs) {
    const unsigned NF = MH / PE, SF = MW / SIMD;
    ap_uint<SIMD * AB> ibuf[SF];
    ap_int<ACC> acc[PE];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 1
    for (unsigned g = 0; g < groups; g++) {
        for (unsigned sf = 0; sf < SF; sf++) {
            for (unsigned i = 0; i < SIMD; i++) {
                for (unsigned nf = 0; nf < NF; nf++) {
#pragma HLS PIPELINE II = 1
                    wbuf[i][nf * SF + sf] = win.read();
                }
            }
        }
        for (unsigned r = 0; r < vecs; r++) {
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
                    ap_uint<PE * SIMD * WB> w = 0;  // the ROM word layout, gathered from the SIMD banks
                    for (unsigned i = 0; i < SIMD; i++) {
#pragma HLS UNROLL
                        ap_uint<PE * WB> b = wbuf[i][nf * SF + sf];
                        for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
                            w((p * SIMD + i) * WB + WB - 1, (p * SIMD + i) * WB) = b(p * WB + WB - 1, p * WB);
                        }
                    }
                    mvau_step<MH, PE, SIMD, MW / SIMD, AB, AE, AS, WB, WE, WS, ACC, NO_ACT, NT, CB, OB, USE_DSP, GROUPS,
                  FIELD, PACK_BITS>(
                        a, w, nf, sf, acc, thresholds, codes, out);
                }
            }
        }
    }
}

#endif
