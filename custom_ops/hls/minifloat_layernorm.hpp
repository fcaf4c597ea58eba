// minifinn MinifloatLayerNorm, HLS compute template (Vitis HLS; simulate with g++ and the ap_types headers).
// Arithmetic contract: custom_ops/minifloat_layernorm.py. Per row of D codes (D / PE words of PE codes, code 0 in
// the LSBs), with the decode ROM dec (code -> the format's integer a):
//   pass 1  buffer the row; S1 = sum a, S2 = sum a^2
//   V' = D S2 - S1^2 + EPS;  e = bitlength(V') / 2;  r = isqrt(floor(2^(2(R+e)) / V'))  (one result bit per step)
//   pass 2  z = (D a - S1) * r >> e (arithmetic);  out code = codes[#{k : sign_c * z >= T[c][k]}]
//           (minifloat_layernorm), or z itself (minifloat_layernorm_z, noActivation = 1)
// The rows are not overlapped: a row takes 2 D / PE cycles plus the division and the square root.
#ifndef MINIFINN_MINIFLOAT_LAYERNORM_HPP
#define MINIFINN_MINIFLOAT_LAYERNORM_HPP

#include <ap_int.h>
#include <hls_stream.h>

template <unsigned QW, unsigned VW, unsigned DW>
ap_uint<QW> layernorm_isqrt_div(ap_uint<VW> v, unsigned two_re) {
    // floor(sqrt(floor(2^two_re / v))): the quotient (< 2^(2 QW)) by division, then the square root bit by bit
    ap_uint<2 * QW + 2> q = ap_uint<2 * QW + 2>((ap_uint<DW>(1) << two_re) / v);
    ap_uint<QW> root = 0;
    for (int b = QW - 1; b >= 0; b--) {
        ap_uint<QW> cand = root | (ap_uint<QW>(1) << b);
        if (ap_uint<2 * QW + 2>(cand) * cand <= q) root = cand;
    }
    return root;
}

// pass 1 of a row: read and buffer its NF words, S1 and S2; then e and r
template <unsigned D, unsigned PE, unsigned IB, unsigned AW, unsigned S1W, unsigned S2W, unsigned VW, unsigned QW,
          unsigned R>
void layernorm_row_stats(hls::stream<ap_uint<PE * IB> > &in, ap_uint<PE * IB> buf[D / PE],
                         const ap_int<AW> dec[1 << IB], const ap_uint<VW> eps, ap_int<S1W> &s1, ap_uint<QW> &r,
                         unsigned &e) {
    const unsigned NF = D / PE;
    ap_int<S2W> s2 = 0;
    s1 = 0;
    for (unsigned f = 0; f < NF; f++) {
#pragma HLS PIPELINE II = 1
        ap_uint<PE * IB> w = in.read();
        buf[f] = w;
        for (unsigned p = 0; p < PE; p++) {
            ap_int<AW> a = dec[ap_uint<IB>(w >> (p * IB))];
            s1 += a;
            s2 += ap_int<S2W>(a) * a;
        }
    }
    ap_uint<VW> v = ap_uint<VW>(ap_int<VW + 1>(D) * s2 - ap_int<VW + 1>(s1) * s1) + eps;
    unsigned bits = 0;
    for (unsigned b = 0; b < VW; b++)
        if (v[b]) bits = b + 1;
    e = bits / 2;
    r = layernorm_isqrt_div<QW, VW, 2 * R + VW + 2>(v, 2 * (R + e));
}

// z = (D a - S1) * r >> e (arithmetic), ZW + 1 bits
template <unsigned D, unsigned AW, unsigned S1W, unsigned NW, unsigned QW, unsigned ZW>
ap_int<ZW + 1> layernorm_z(ap_int<AW> a, ap_int<S1W> s1, ap_uint<QW> r, unsigned e) {
    ap_int<NW> n = ap_int<NW>(D) * a - s1;
    ap_int<NW + QW + 1> prod = ap_int<NW + QW + 1>(n) * ap_int<QW + 1>(r);
    return ap_int<ZW + 1>(prod >> e);
}

// thresholds: out code = codes[#{k : sign_c * z >= T[c][k]}]
template <unsigned D, unsigned PE, unsigned IB, unsigned OB, unsigned NT, unsigned AW, unsigned S1W, unsigned S2W,
          unsigned VW, unsigned NW, unsigned QW, unsigned ZW, unsigned R>
void minifloat_layernorm(hls::stream<ap_uint<PE * IB> > &in, hls::stream<ap_uint<PE * OB> > &out,
                         const ap_int<AW> dec[1 << IB], const ap_int<ZW + 1> thr[D][NT], const ap_uint<1> neg[D],
                         const ap_uint<OB> codes[NT + 1], const ap_uint<VW> eps, unsigned rows) {
    const unsigned NF = D / PE;
    ap_uint<PE * IB> buf[NF];
    for (unsigned row = 0; row < rows; row++) {
        ap_int<S1W> s1;
        ap_uint<QW> r;
        unsigned e;
        layernorm_row_stats<D, PE, IB, AW, S1W, S2W, VW, QW, R>(in, buf, dec, eps, s1, r, e);
        for (unsigned f = 0; f < NF; f++) {
#pragma HLS PIPELINE II = 1
            ap_uint<PE * IB> w = buf[f];
            ap_uint<PE * OB> o = 0;
            for (unsigned p = 0; p < PE; p++) {
                unsigned c = f * PE + p;
                ap_int<ZW + 1> z = layernorm_z<D, AW, S1W, NW, QW, ZW>(dec[ap_uint<IB>(w >> (p * IB))], s1, r, e);
                if (neg[c]) z = -z;
                unsigned count = 0;
                for (unsigned k = 0; k < NT; k++)
                    if (z >= thr[c][k]) count++;
                o |= ap_uint<PE * OB>(codes[count]) << (p * OB);
            }
            out.write(o);
        }
    }
}

// accumulator output (noActivation = 1): z itself, OB-bit two's complement per lane
template <unsigned D, unsigned PE, unsigned IB, unsigned OB, unsigned AW, unsigned S1W, unsigned S2W, unsigned VW,
          unsigned NW, unsigned QW, unsigned ZW, unsigned R>
void minifloat_layernorm_z(hls::stream<ap_uint<PE * IB> > &in, hls::stream<ap_uint<PE * OB> > &out,
                           const ap_int<AW> dec[1 << IB], const ap_uint<VW> eps, unsigned rows) {
    const unsigned NF = D / PE;
    ap_uint<PE * IB> buf[NF];
    for (unsigned row = 0; row < rows; row++) {
        ap_int<S1W> s1;
        ap_uint<QW> r;
        unsigned e;
        layernorm_row_stats<D, PE, IB, AW, S1W, S2W, VW, QW, R>(in, buf, dec, eps, s1, r, e);
        for (unsigned f = 0; f < NF; f++) {
#pragma HLS PIPELINE II = 1
            ap_uint<PE * IB> w = buf[f];
            ap_uint<PE * OB> o = 0;
            for (unsigned p = 0; p < PE; p++) {
                ap_int<ZW + 1> z = layernorm_z<D, AW, S1W, NW, QW, ZW>(dec[ap_uint<IB>(w >> (p * IB))], s1, r, e);
                o |= ap_uint<PE * OB>(ap_uint<OB>(ap_int<OB>(z))) << (p * OB);
            }
            out.write(o);
        }
    }
}

#endif
