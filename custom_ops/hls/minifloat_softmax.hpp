// minifinn MinifloatSoftmax, HLS compute template (Vitis HLS; simulate with g++ and the ap_types headers).
// Arithmetic contract: custom_ops/minifloat_softmax.py. Per row of N codes (NF = N / PE words of PE codes, code 0 in
// the LSBs), with the per-code ROMs etab (EB bits) and shift (HB bits):
//   pass 1  read the row into buf; unless EXACT, h_min = min shift[c]           (EXACT: h_min = 0, S summed here)
//   pass 2  (not EXACT) S = sum_i e_i,  e_i = etab[c_i] >> (shift[c_i] - h_min)  (0 when the shift is >= EB)
//   thresholds  theta[k] = (nums[k] * S + bias[k] + 2^D - 1) >> D, KU products per cycle (ceil(K / KU) cycles)
//   pass 3  out code = codes[OFFSET + #{k : e_i >= theta[k]}]
// EXACT (alignBits >= the table's shift range): the ROM holds e_c itself and every shift is 0.
#ifndef MINIFINN_MINIFLOAT_SOFTMAX_HPP
#define MINIFINN_MINIFLOAT_SOFTMAX_HPP

#include <ap_int.h>
#include <hls_stream.h>

template <unsigned EB, unsigned HB, unsigned IB>
ap_uint<EB> softmax_e(ap_uint<IB> c, ap_uint<HB> h_min, const ap_uint<EB> etab[1 << IB],
                      const ap_uint<HB> shift[1 << IB]) {
#pragma HLS INLINE
    ap_uint<HB> d = shift[c] - h_min;  // shift[c] >= h_min: the row's minimum
    return d >= EB ? ap_uint<EB>(0) : ap_uint<EB>(etab[c] >> d);
}

template <unsigned N, unsigned PE, unsigned IB, unsigned OB, unsigned EB, unsigned HB, bool EXACT, unsigned SB,
          unsigned NB, unsigned CW, unsigned TW, unsigned D, unsigned K, unsigned KA, unsigned OFFSET, unsigned NV, unsigned CB,
          unsigned KU>
void minifloat_softmax(hls::stream<ap_uint<PE * IB> > &in, hls::stream<ap_uint<PE * OB> > &out,
                       const ap_uint<EB> etab[1 << IB], const ap_uint<HB> shift[1 << IB], const ap_uint<NB> nums[KA],
                       const ap_uint<1> bias[KA], const ap_uint<OB> codes[NV], unsigned rows) {
    const unsigned NF = N / PE;
    ap_uint<PE * IB> buf[NF];
    ap_uint<TW> theta[KA];
    const ap_uint<CW> round_up = (ap_uint<CW>(1) << D) - 1;
#pragma HLS ARRAY_PARTITION variable = theta complete dim = 1
    for (unsigned r = 0; r < rows; r++) {
        ap_uint<HB> h_min = 0;
        ap_uint<SB> sum = 0;
        for (unsigned f = 0; f < NF; f++) {
#pragma HLS PIPELINE II = 1
            ap_uint<PE * IB> w = in.read();
            buf[f] = w;
            for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
                ap_uint<IB> c = w(p * IB + IB - 1, p * IB);
                if (EXACT) {
                    sum += etab[c];
                } else {
                    ap_uint<HB> h = shift[c];
                    if ((f == 0 && p == 0) || h < h_min) h_min = h;
                }
            }
        }
        if (!EXACT) {
            for (unsigned f = 0; f < NF; f++) {
#pragma HLS PIPELINE II = 1
                ap_uint<PE * IB> w = buf[f];
                for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
                    sum += softmax_e<EB, HB, IB>(w(p * IB + IB - 1, p * IB), h_min, etab, shift);
                }
            }
        }
        for (unsigned j = 0; j < (K + KU - 1) / KU; j++) {
#pragma HLS PIPELINE II = 1
            for (unsigned u = 0; u < KU; u++) {
#pragma HLS UNROLL
                const unsigned k = j * KU + u;
                if (k < K) {
                    ap_uint<CW> prod = ap_uint<CW>(nums[k]) * ap_uint<CW>(sum) + ap_uint<CW>(bias[k]) + round_up;
                    theta[k] = ap_uint<TW>(prod >> D);
                }
            }
        }
        for (unsigned f = 0; f < NF; f++) {
#pragma HLS PIPELINE II = 1
            ap_uint<PE * IB> w = buf[f];
            ap_uint<PE * OB> o = 0;
            for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
                ap_uint<EB> e = softmax_e<EB, HB, IB>(w(p * IB + IB - 1, p * IB), h_min, etab, shift);
                ap_uint<CB> cnt = 0;
                for (unsigned k = 0; k < K; k++) {
#pragma HLS UNROLL
                    cnt += (ap_uint<TW>(e) >= theta[k]) ? 1 : 0;
                }
                o(p * OB + OB - 1, p * OB) = codes[OFFSET + cnt];
            }
            out.write(o);
        }
    }
}

#endif
