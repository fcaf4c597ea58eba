// minifinn channel-stream ops, HLS compute templates (Vitis HLS; simulate with g++ and ap_types). Contracts:
// custom_ops/minifloat_thresholding.py, minifloat_lut.py, minifloat_add.py. Words hold PE lanes, lane 0 in the LSBs;
// channel of lane p of word w: (w % (C / PE)) * PE + p. A requantizer's output code is
// codes[#{k : sign_c * acc >= thr[c][k]}].
#ifndef MINIFINN_CHANNEL_OPS_HPP
#define MINIFINN_CHANNEL_OPS_HPP

#include <ap_int.h>
#include <hls_stream.h>

template <unsigned NT, unsigned TW, unsigned OB, unsigned AW>
ap_uint<OB> mf_requant(ap_int<AW> acc, bool neg, const ap_int<TW> row[NT], const ap_uint<OB> codes[NT + 1]) {
#pragma HLS INLINE
    ap_int<AW + 1> u = neg ? ap_int<AW + 1>(-acc) : ap_int<AW + 1>(acc);
    unsigned count = 0;
    for (unsigned k = 0; k < NT; k++)
        if (u >= row[k]) count++;
    return codes[count];
}

// standalone requantizer of an AW-bit accumulator stream
template <unsigned C, unsigned PE, unsigned AW, unsigned OB, unsigned NT, unsigned TW>
void mf_thresholding(hls::stream<ap_uint<PE * AW> > &in, hls::stream<ap_uint<PE * OB> > &out,
                     const ap_int<TW> thr[C][NT], const ap_uint<1> neg[C], const ap_uint<OB> codes[NT + 1],
                     unsigned words) {
    const unsigned CF = C / PE;
    for (unsigned w = 0; w < words; w++) {
#pragma HLS PIPELINE II = 1
        ap_uint<PE * AW> x = in.read();
        ap_uint<PE * OB> o = 0;
        for (unsigned p = 0; p < PE; p++) {
            unsigned c = (w % CF) * PE + p;
            ap_int<AW> acc = ap_int<AW>(ap_uint<AW>(x >> (p * AW)));
            o |= ap_uint<PE * OB>(mf_requant<NT, TW, OB, AW>(acc, neg[c], thr[c], codes)) << (p * OB);
        }
        out.write(o);
    }
}

// elementwise function of one code: a 2^IB-entry table of output codes
template <unsigned PE, unsigned IB, unsigned OB>
void mf_lut(hls::stream<ap_uint<PE * IB> > &in, hls::stream<ap_uint<PE * OB> > &out, const ap_uint<OB> table[1 << IB],
            unsigned words) {
    for (unsigned w = 0; w < words; w++) {
#pragma HLS PIPELINE II = 1
        ap_uint<PE * IB> x = in.read();
        ap_uint<PE * OB> o = 0;
        for (unsigned p = 0; p < PE; p++) o |= ap_uint<PE * OB>(table[ap_uint<IB>(x >> (p * IB))]) << (p * OB);
        out.write(o);
    }
}

// residual add: acc = K0 * a + K1 * b exactly (a, b the formats' integers via the decode tables), requantized, or
// (NOACT) acc itself as OB = ACC bit two's complement (thr, neg, codes unused).
// CONST1: the second operand is the constant frame c1 (ROM) instead of the in1 stream.
template <unsigned C, unsigned PE, unsigned AB, unsigned BB, unsigned DA, unsigned DB, unsigned ACC, unsigned OB,
          unsigned NT, unsigned TW, bool CONST1, unsigned FRAME, bool NOACT>
void mf_add(hls::stream<ap_uint<PE * AB> > &in0, hls::stream<ap_uint<PE * BB> > &in1,
            hls::stream<ap_uint<PE * OB> > &out, const ap_int<DA> deca[1 << AB], const ap_int<DB> decb[1 << BB],
            const ap_int<64> k0, const ap_int<64> k1, const ap_int<TW> thr[C][NT], const ap_uint<1> neg[C],
            const ap_uint<OB> codes[NT + 1], const ap_uint<PE * BB> c1[FRAME], unsigned words) {
    const unsigned CF = C / PE;
    for (unsigned w = 0; w < words; w++) {
#pragma HLS PIPELINE II = 1
        ap_uint<PE * AB> x = in0.read();
        ap_uint<PE * BB> y = CONST1 ? c1[w % FRAME] : in1.read();
        ap_uint<PE * OB> o = 0;
        for (unsigned p = 0; p < PE; p++) {
            unsigned c = (w % CF) * PE + p;
            ap_int<ACC> acc = ap_int<ACC>(k0) * deca[ap_uint<AB>(x >> (p * AB))] +
                              ap_int<ACC>(k1) * decb[ap_uint<BB>(y >> (p * BB))];
            ap_uint<OB> r = NOACT ? ap_uint<OB>(acc) : mf_requant<NT, TW, OB, ACC>(acc, neg[c], thr[c], codes);
            o |= ap_uint<PE * OB>(r) << (p * OB);
        }
        out.write(o);
    }
}

#endif
