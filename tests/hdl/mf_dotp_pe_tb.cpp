// C++ testbench for mf_dotp_pe (mf_mac.hpp): reads "clear a_0..a_{SIMD-1} w_0..w_{PE*SIMD-1}" lines (decimal codes,
// w code p*SIMD+i) from stdin, accumulates per PE and prints the PE accumulators (decimal) after each vector.
// Parameters come as -D macros (TB_*).
#include <iostream>
#include "mf_mac.hpp"

int main() {
    ap_int<TB_ACC_BITS> acc[TB_PE];
    for (unsigned p = 0; p < TB_PE; p++) acc[p] = 0;
    unsigned clear;
    while (std::cin >> clear) {
        ap_uint<TB_SIMD * TB_A_BITS> a = 0;
        ap_uint<TB_PE * TB_SIMD * TB_B_BITS> w = 0;
        for (unsigned i = 0; i < TB_SIMD; i++) { unsigned c; std::cin >> c; a(i * TB_A_BITS + TB_A_BITS - 1, i * TB_A_BITS) = c; }
        for (unsigned k = 0; k < TB_PE * TB_SIMD; k++) { unsigned c; std::cin >> c; w(k * TB_B_BITS + TB_B_BITS - 1, k * TB_B_BITS) = c; }
        ap_int<TB_ACC_BITS> sums[TB_PE];
        mf_dotp_pe<TB_PE, TB_SIMD, TB_A_BITS, TB_A_E, TB_A_SIGNED, TB_B_BITS, TB_B_E, TB_B_SIGNED, TB_ACC_BITS,
                   TB_USE_DSP, TB_GROUPS, TB_FIELD, TB_PACK_BITS>(a, w, sums);
        for (unsigned p = 0; p < TB_PE; p++) {
            acc[p] = (clear ? ap_int<TB_ACC_BITS>(0) : acc[p]) + sums[p];
            std::cout << acc[p].to_string(10) << (p + 1 < TB_PE ? " " : "\n");
        }
    }
    return 0;
}
