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
#pragma HLS BIND_OP variable = sp op = mul impl = fabric
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

// N exact products a * b_j from one multiplier (mf_mul_packed in mf_mac.v; derivation in custom_ops/mac/packing.py):
// B = sum_j sb_j * 2^(j*K) (PKW bits), P = sa * B + sum_{j<N-1} 2^(j*K+K-1); product j < N-1 is field j of P minus
// 2^(K-1), the last one field N-1 read as signed. N = 1: sa * sb. The multiplier is a DSP48 (BIND_OP impl=dsp)
// when its product has >= 9 bits, else fabric; each product is shifted by its exponent sum as in mf_mul.
template <unsigned N, unsigned AB, unsigned AE, bool AS, unsigned BB, unsigned BE, bool BS, unsigned K, unsigned PKW>
void mf_mul_packed(ap_uint<AB> a, ap_uint<N * BB> b,
                   ap_int<mf_dw<AB, AE, AS>::value + mf_dw<BB, BE, BS>::value> p[N]) {
#pragma HLS INLINE
    const unsigned PW = mf_dw<AB, AE, AS>::value + mf_dw<BB, BE, BS>::value;
    const unsigned SWA = mf_sw<AB, AE, AS>::value, SWB = mf_sw<BB, BE, BS>::value;
    const unsigned MW = (N > 1) ? PKW + SWA : SWA + SWB;  // multiplier product bits
    ap_int<SWA> sa;
    ap_uint<(AE == 0) ? 1 : AE> ha;
    mf_split<AB, AE, AS>(a, sa, ha);
    ap_int<SWB> sb[N];
    ap_uint<(BE == 0) ? 1 : BE> hb[N];
    ap_int<(N > 1) ? PKW : SWB> packed = 0;
    ap_int<MW> bias = 0;
    for (unsigned j = 0; j < N; j++) {
#pragma HLS UNROLL
        mf_split<BB, BE, BS>(ap_uint<BB>(b(j * BB + BB - 1, j * BB)), sb[j], hb[j]);
        packed += ap_int<(N > 1) ? PKW : SWB>(sb[j]) << (j * K);
        if (j + 1 < N) bias += ap_int<MW>(1) << (j * K + K - 1);
    }
    ap_int<MW> m;
    if (MW >= 9) {
        ap_int<MW> prod = packed * sa;
#pragma HLS BIND_OP variable = prod op = mul impl = dsp
        m = prod + bias;
    } else {
        ap_int<MW> prod = packed * sa;
#pragma HLS BIND_OP variable = prod op = mul impl = fabric
        m = prod + bias;
    }
    for (unsigned j = 0; j < N; j++) {
#pragma HLS UNROLL
        ap_uint<K> u = m(j * K + K - 1, j * K);
        ap_int<K + 1> f = (N == 1 || j + 1 == N) ? ap_int<K + 1>(ap_int<K>(u))
                                                 : ap_int<K + 1>(ap_int<K + 1>(u) - (ap_int<K + 1>(1) << (K - 1)));
        p[j] = ap_int<PW>(f) << (unsigned(ha) + unsigned(hb[j]));
    }
}

// PE dot products of the activations a (SIMD codes) with PE weight vectors w (code p*SIMD+i at bits
// (p*SIMD+i)*BB, the MVAU's weight word): sums[p] = sum_i a_i * w[p*SIMD+i], exact (mf_dotp_pe in mf_mac.v).
// USE_DSP = 0: PE mf_dotp (fabric products). USE_DSP = 1: per SIMD lane the PE lanes in GROUPS contiguous groups of
// equal size (+-1, the larger first), one mf_mul_packed per group (FIELD, PACK_BITS: custom_ops/mac/packing.py).
template <unsigned PE, unsigned SIMD, unsigned AB, unsigned AE, bool AS, unsigned BB, unsigned BE, bool BS,
          unsigned TW, bool USE_DSP, unsigned GROUPS, unsigned FIELD, unsigned PACK_BITS>
void mf_dotp_pe(ap_uint<SIMD * AB> a, ap_uint<PE * SIMD * BB> w, ap_int<TW> sums[PE]) {
#pragma HLS INLINE
    const unsigned PW = mf_dw<AB, AE, AS>::value + mf_dw<BB, BE, BS>::value;
    const unsigned BASE = PE / GROUPS, REM = PE % GROUPS, NMAX = BASE + (REM ? 1 : 0);
    if (!USE_DSP) {
        for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
            sums[p] = mf_dotp<SIMD, AB, AE, AS, BB, BE, BS, TW>(a, w(p * SIMD * BB + SIMD * BB - 1, p * SIMD * BB));
        }
        return;
    }
    for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
        sums[p] = 0;
    }
    for (unsigned i = 0; i < SIMD; i++) {
#pragma HLS UNROLL
        ap_uint<AB> ai = a(i * AB + AB - 1, i * AB);
        for (unsigned g = 0; g < GROUPS; g++) {
#pragma HLS UNROLL
            const unsigned g0 = g * BASE + (g < REM ? g : REM);
            ap_uint<NMAX * BB> bg = 0;
            ap_int<PW> pg[NMAX];
            for (unsigned j = 0; j < NMAX; j++) {
#pragma HLS UNROLL
                if (g0 + j < PE) bg(j * BB + BB - 1, j * BB) = w(((g0 + j) * SIMD + i) * BB + BB - 1, ((g0 + j) * SIMD + i) * BB);
            }
            if (g < REM || REM == 0) {
                mf_mul_packed<NMAX, AB, AE, AS, BB, BE, BS, FIELD, PACK_BITS>(ai, bg, pg);
                for (unsigned j = 0; j < NMAX; j++) {
#pragma HLS UNROLL
                    sums[g0 + j] += ap_int<TW>(pg[j]);
                }
            } else {
                mf_mul_packed<(NMAX > 1 ? NMAX - 1 : 1), AB, AE, AS, BB, BE, BS, FIELD, PACK_BITS>(
                    ai, ap_uint<(NMAX > 1 ? NMAX - 1 : 1) * BB>(bg), pg);
                for (unsigned j = 0; j + 1 < NMAX; j++) {
#pragma HLS UNROLL
                    sums[g0 + j] += ap_int<TW>(pg[j]);
                }
            }
        }
    }
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
