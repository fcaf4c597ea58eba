// C++ testbench for mf_mac.hpp: reads "clear a_0..a_{TB_SIMD-1} b_0..b_{TB_SIMD-1}" lines (decimal codes) from stdin,
// accumulates like mf_dotp and prints the accumulator (decimal) after each vector. Parameters come as -D macros.
#include <iostream>
#include "mf_mac.hpp"

int main() {
    const unsigned PW = mf_dw<TB_A_BITS, TB_A_E, TB_A_SIGNED>::value + mf_dw<TB_B_BITS, TB_B_E, TB_B_SIGNED>::value;
    const unsigned TW = PW + 8;
    ap_int<TB_ACC_BITS> acc = 0;
    unsigned clear;
    while (std::cin >> clear) {
        ap_uint<TB_SIMD * TB_A_BITS> a = 0;
        ap_uint<TB_SIMD * TB_B_BITS> b = 0;
        for (unsigned i = 0; i < TB_SIMD; i++) { unsigned c; std::cin >> c; a(i * TB_A_BITS + TB_A_BITS - 1, i * TB_A_BITS) = c; }
        for (unsigned i = 0; i < TB_SIMD; i++) { unsigned c; std::cin >> c; b(i * TB_B_BITS + TB_B_BITS - 1, i * TB_B_BITS) = c; }
        ap_int<TB_ACC_BITS> sum = mf_dotp<TB_SIMD, TB_A_BITS, TB_A_E, TB_A_SIGNED, TB_B_BITS, TB_B_E, TB_B_SIGNED, TW>(a, b);
        acc = (clear ? ap_int<TB_ACC_BITS>(0) : acc) + sum;
        std::cout << acc.to_string(10) << "\n";
    }
    return 0;
}
