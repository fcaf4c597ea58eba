// minifinn MinifloatThresholding, HLS compute templates of the "bsearch" and "convert" styles (Vitis HLS; simulate
// with g++ and ap_types; "parallel" is mf_thresholding in channel_ops.hpp). Contracts: custom_ops/
// minifloat_thresholding.py and custom_ops/requant_convert.py. Words hold PE lanes, lane 0 in the LSBs; channel of
// lane p of word w: (w % (C / PE)) * PE + p.
#ifndef MINIFINN_MINIFLOAT_THRESHOLDING_HPP
#define MINIFINN_MINIFLOAT_THRESHOLDING_HPP

#include <ap_int.h>
#include <hls_stream.h>

// One step of the binary search: the decided bits b (s of them) get the bit (T <= u) appended, T being the threshold
// the step reads at b (its stage memory).
template <unsigned M, unsigned K>
ap_uint<M> mf_bsearch_step(ap_int<K> u, ap_uint<M> b, ap_int<K> t) {
#pragma HLS INLINE
    return (b << 1) | ap_uint<M>(t <= u ? 1 : 0);
}

// "bsearch": count = #{i : T[ch][i] <= u} by M comparisons, u = neg[ch] ? -acc : acc (K = AW + 1 bits). SEARCH is
// the node's generated search (SEARCH::count(u, lane, cf)): one step per stage, each reading its own per-lane
// memory of CF * 2^s thresholds at cf * 2^s + b.
template <unsigned C, unsigned PE, unsigned AW, unsigned OB, unsigned M, class SEARCH>
void mf_thresholding_bsearch(hls::stream<ap_uint<PE * AW> > &in, hls::stream<ap_uint<PE * OB> > &out,
                             const ap_uint<1> neg[C], const ap_uint<OB> codes[1 << M], unsigned words) {
    const unsigned CF = C / PE;
    for (unsigned w = 0; w < words; w++) {
#pragma HLS PIPELINE II = 1
        ap_uint<PE * AW> x = in.read();
        ap_uint<PE * OB> o = 0;
        unsigned cf = w % CF;
        for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
            ap_int<AW> acc = ap_int<AW>(ap_uint<AW>(x >> (p * AW)));
            ap_int<AW + 1> u = neg[cf * PE + p] ? ap_int<AW + 1>(-acc) : ap_int<AW + 1>(acc);
            o |= ap_uint<PE * OB>(codes[SEARCH::count(u, p, cf)]) << (p * OB);
        }
        out.write(o);
    }
}

// "convert" of one accumulator: P = acc * m + b (DSP: a DSP48 multiplier, else fabric), relu, then round half to even
// of P / 2^sh onto the output format: a minifloat with OE exponent bits (OE > 0; code sign|exponent|mantissa,
// saturating to the largest magnitude code POSMAX, subnormals) or an integer clipped to [-NEGMAX, POSMAX] (OE = 0; two's
// complement code).
template <unsigned AW, unsigned MB, unsigned BB, unsigned SB, unsigned OB, unsigned OE, bool RELU, bool DSP,
          long long POSMAX, long long NEGMAX>
ap_uint<OB> mf_convert(ap_int<AW> acc, ap_int<MB> m, ap_int<BB> b, ap_uint<SB> sh) {
#pragma HLS INLINE
    const unsigned PROD = AW + MB;
    const unsigned PW = (PROD > BB ? PROD : BB) + 1;
    const unsigned MANT = OE > 0 ? OB - 1 - OE : 0;
    ap_int<PROD> prod;
    if (DSP) {
        ap_int<PROD> r = acc * m;
#pragma HLS BIND_OP variable = r op = mul impl = dsp
        prod = r;
    } else {
        ap_int<PROD> r = acc * m;
#pragma HLS BIND_OP variable = r op = mul impl = fabric
        prod = r;
    }
    ap_int<PW> p = ap_int<PW>(prod) + ap_int<PW>(b);
    bool neg = !RELU && p < 0;
    ap_uint<PW> q = p < 0 ? (RELU ? ap_uint<PW>(0) : ap_uint<PW>(-p)) : ap_uint<PW>(p);
    int len = 0;
    for (unsigned i = 0; i < PW; i++) {
#pragma HLS UNROLL
        if (q[i]) len = i + 1;
    }
    int d = sh;
    int top = len - int(MANT + 1);
    int ediff = 0;
    if (OE > 0 && top > d) {
        ediff = top - d;
        d = top;
    }
    ap_uint<PW + 1> t = d > int(PW) ? ap_uint<PW + 1>(0) : ap_uint<PW + 1>((ap_uint<PW + 1>(q) << 1) >> d);
    ap_uint<PW> k = t >> 1;
    bool round = t[0];
    bool sticky = false;  // any bit of q below the round bit (bits 0 .. d - 2)
    if (d >= 2) {
        ap_uint<PW> low = d - 1 >= int(PW) ? ~ap_uint<PW>(0) : ap_uint<PW>((ap_uint<PW + 1>(1) << (d - 1)) - 1);
        sticky = (q & low) != 0;
    }
    if (round && (sticky || k[0])) k++;
    if (OE > 0) {
        const unsigned EMAX = (1u << OE) - 1;
        unsigned e = ediff + unsigned(k >> MANT);
        ap_uint<OB> code = 0;
        if (e > EMAX) {
            code = ap_uint<OB>((1u << (OB - 1)) - 1);
        } else {
            code = (ap_uint<OB>(e) << MANT) | ap_uint<OB>(k & ((1u << MANT) - 1));
        }
        if (code > ap_uint<OB>(POSMAX)) code = ap_uint<OB>(POSMAX);  // a reduced maximum (OCP E4M3: 448)
        if (neg && k != 0) code |= ap_uint<OB>(1) << (OB - 1);
        return code;
    }
    ap_uint<PW + 1> lim = neg ? ap_uint<PW + 1>(NEGMAX) : ap_uint<PW + 1>(POSMAX);
    ap_uint<PW + 1> mag = ap_uint<PW + 1>(k) > lim ? lim : ap_uint<PW + 1>(k);
    ap_uint<PW + 1> val = neg ? ap_uint<PW + 1>(-mag) : mag;
    return ap_uint<OB>(val);
}

// "convert" stream: per channel the multiplier mult, bias bias and shift shift (custom_ops/requant_convert.py).
template <unsigned C, unsigned PE, unsigned AW, unsigned OB, unsigned MB, unsigned BB, unsigned SB, unsigned OE,
          bool RELU, bool DSP, long long POSMAX, long long NEGMAX>
void mf_requant_convert(hls::stream<ap_uint<PE * AW> > &in, hls::stream<ap_uint<PE * OB> > &out,
                        const ap_int<MB> mult[C], const ap_int<BB> bias[C], const ap_uint<SB> shift[C],
                        unsigned words) {
    const unsigned CF = C / PE;
    for (unsigned w = 0; w < words; w++) {
#pragma HLS PIPELINE II = 1
        ap_uint<PE * AW> x = in.read();
        ap_uint<PE * OB> o = 0;
        for (unsigned p = 0; p < PE; p++) {
#pragma HLS UNROLL
            unsigned c = (w % CF) * PE + p;
            ap_int<AW> acc = ap_int<AW>(ap_uint<AW>(x >> (p * AW)));
            ap_uint<OB> code = mf_convert<AW, MB, BB, SB, OB, OE, RELU, DSP, POSMAX, NEGMAX>(acc, mult[c], bias[c],
                                                                                            shift[c]);
            o |= ap_uint<PE * OB>(code) << (p * OB);
        }
        out.write(o);
    }
}

#endif
