// minifinn MAC library, HLS C++ (Vitis HLS; simulates with g++ and the Vivado ap_types headers).
//
// The same arithmetic as mf_mac.v. Operand template parameters: BITS (code bits), E (exponent bits, 0 = integer),
// SIGNED (integers only). A minifloat code s|e|f with M = BITS-1-E mantissa bits decodes to the signed integer
//   (-1)^s * (f + [e>0]*2^M) * 2^(max(e,1)-1)
// (value = int * 2^(1-bias-M)); an integer code decodes to itself. Products are exact; sums are exact in the
// accumulator type the caller chooses (Kulisch accumulator, sized by compiler.numerics.accumulator_bits).
#ifndef MINIFINN_MF_MAC_HPP
#define MINIFINN_MF_MAC_HPP

#include <ap_int.h>

template <unsigned BITS, unsigned E, bool SIGNED>
struct mf_dw {
    static const unsigned value = (E == 0) ? (SIGNED ? BITS : BITS + 1) : ((1u << E) + BITS - 1 - E);
};

// code -> signed integer-domain value
template <unsigned BITS, unsigned E, bool SIGNED>
ap_int<mf_dw<BITS, E, SIGNED>::value> mf_decode(ap_uint<BITS> code) {
#pragma HLS INLINE
    const unsigned DW = mf_dw<BITS, E, SIGNED>::value;
    if (E == 0) {
        if (SIGNED) return ap_int<DW>(ap_int<BITS>(code));
        return ap_int<DW>(code);
    }
    const unsigned M = (E == 0) ? 1 : BITS - 1 - E;
    const unsigned EB = (E == 0) ? 1 : E;
    ap_uint<1> s = code[BITS - 1];
    ap_uint<EB> e = (code >> M) & ((1u << EB) - 1);
    ap_uint<M> f = code & ((1u << M) - 1);
    ap_uint<DW - 1> sig = f;
    if (e != 0) sig |= ap_uint<DW - 1>(1) << M;
    ap_uint<EB> shift = (e == 0) ? ap_uint<EB>(0) : ap_uint<EB>(e - 1);
    ap_uint<DW - 1> mag = sig << shift;
    ap_int<DW> v = mag;
    return s ? ap_int<DW>(-v) : v;
}

template <unsigned BITS, unsigned E, bool SIGNED>
struct mf_sw {
    static const unsigned value = (E == 0) ? (SIGNED ? BITS : BITS + 1) : (BITS - E + 1);
};

// code -> signed significand +-(f + [e>0]*2^M) (the integer itself for E = 0) and shift max(e,1)-1
template <unsigned BITS, unsigned E, bool SIGNED>
void mf_split(ap_uint<BITS> code, ap_int<mf_sw<BITS, E, SIGNED>::value> &sig, ap_uint<(E == 0) ? 1 : E> &shift) {
#pragma HLS INLINE
    const unsigned SW = mf_sw<BITS, E, SIGNED>::value;
    if (E == 0) {
        sig = SIGNED ? ap_int<SW>(ap_int<BITS>(code)) : ap_int<SW>(code);
        shift = 0;
        return;
    }
    const unsigned M = (E == 0) ? 1 : BITS - 1 - E;
    const unsigned EB = (E == 0) ? 1 : E;
    ap_uint<EB> e = (code >> M) & ((1u << EB) - 1);
    ap_int<SW> mag = ap_uint<M>(code & ((1u << M) - 1));
    if (e != 0) mag += ap_int<SW>(1) << M;
    sig = code[BITS - 1] ? ap_int<SW>(-mag) : mag;
    shift = (e == 0) ? ap_uint<EB>(0) : ap_uint<EB>(e - 1);
}

// exact product of two codes: short significand product, shifted by the exponent sum
template <unsigned AB, unsigned AE, bool AS, unsigned BB, unsigned BE, bool BS>
ap_int<mf_dw<AB, AE, AS>::value + mf_dw<BB, BE, BS>::value> mf_mul(ap_uint<AB> a, ap_uint<BB> b) {
#pragma HLS INLINE
    const unsigned PW = mf_dw<AB, AE, AS>::value + mf_dw<BB, BE, BS>::value;
    ap_int<mf_sw<AB, AE, AS>::value> sa;
    ap_int<mf_sw<BB, BE, BS>::value> sb;
    ap_uint<(AE == 0) ? 1 : AE> ha;
    ap_uint<(BE == 0) ? 1 : BE> hb;
    mf_split<AB, AE, AS>(a, sa, ha);
    mf_split<BB, BE, BS>(b, sb, hb);
    ap_int<mf_sw<AB, AE, AS>::value + mf_sw<BB, BE, BS>::value> sp = sa * sb;
    return ap_int<PW>(sp) << (unsigned(ha) + unsigned(hb));
}

// SIMD-wide dot product of packed code vectors (element i in bits [i*BITS, (i+1)*BITS)), exact
template <unsigned SIMD, unsigned AB, unsigned AE, bool AS, unsigned BB, unsigned BE, bool BS, unsigned TW>
ap_int<TW> mf_dotp(ap_uint<SIMD * AB> a, ap_uint<SIMD * BB> b) {
#pragma HLS INLINE
    ap_int<TW> sum = 0;
    for (unsigned i = 0; i < SIMD; i++) {
#pragma HLS UNROLL
        ap_uint<AB> ai = a(i * AB + AB - 1, i * AB);
        ap_uint<BB> bi = b(i * BB + BB - 1, i * BB);
        sum += ap_int<TW>(mf_mul<AB, AE, AS, BB, BE, BS>(ai, bi));
    }
    return sum;
}

// number of thresholds T[0..N-1] (ascending) that acc reaches: sum_i [acc >= T[i]]
template <unsigned N, unsigned ACC, unsigned OUT_BITS>
ap_uint<OUT_BITS> mf_threshold(ap_int<ACC> acc, const ap_int<ACC> thresholds[N]) {
#pragma HLS INLINE
    ap_uint<OUT_BITS> count = 0;
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        count += (acc >= thresholds[i]) ? 1 : 0;
    }
    return count;
}

#endif
