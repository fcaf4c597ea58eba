// AXI-stream harness of a Verilated minifinn design (custom_ops/rtl/verilator.py): the C++ twin of the Icarus
// testbenches tb_axis.v.tpl / tb_axis2.v.tpl (one node) and compiler/stitched_sim.py's stitched_tb.v (a partition).
//
// The model class is Vtop (verilator --prefix Vtop), ports ap_clk, ap_rst_n, in0_V_* (and in1_V_* when MF_N_IN is
// 2), out0_V_*, and for a stitched partition (MF_FIFOS) fifo_limit / fifo_max (32 bits per FIFO). Everything that
// varies between runs comes from the command line (key=value): the input words (hex files, one word per line), how
// many words to send and expect, the random valid gaps / backpressure, the FIFO depths. The output file has the
// testbenches' format: one hex word per line, "frame <cycle>" after every frame_out words, "fifo e<k> <max>" at the
// end of a stitched run, "cycles <n>" at the end of a node run, "deadlock sent <n> got <n>" when the watchdog fires.
//
// Cycle for cycle the testbenches' semantics: the stimulus registers change after the clock edge (non-blocking), so
// the design samples the previous cycle's values; the random stream is IEEE 1364's $random(seed) (rtl_dist_uniform,
// as Icarus computes it), drawn in the testbenches' order (every input's valid, then the output's ready), so the
// same gaps and backpressure as Icarus, hence the same outputs and cycle counts.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

#ifndef MF_N_IN
#define MF_N_IN 1
#endif

typedef std::vector<uint32_t> Word;  // 32-bit limbs, least significant first

// --- IEEE 1364-2005 $random(seed) (17.9.2 rtl_dist_uniform over the whole 32-bit range) --------------------------
static double ieee_uniform(int32_t* seed, int32_t start, int32_t end) {
    union {
        float s;
        uint32_t stemp;
    } u;
    const double d = 0.00000011920928955078125;
    double a = start, b = end;
    if (*seed == 0) *seed = 259341593;
    *seed = static_cast<int32_t>(69069u * static_cast<uint32_t>(*seed) + 1u);
    u.stemp = (static_cast<uint32_t>(*seed) >> 9) | 0x3f800000u;
    double c = static_cast<double>(u.s);
    c = c + (c * d);
    return ((b - a) * (c - 1.0)) + a;
}

static int32_t ieee_random(int32_t* seed) {
    double r = (ieee_uniform(seed, INT32_MIN, INT32_MAX) + 2147483648.0) / 4294967295.0;
    r = r * 4294967296.0 - 2147483648.0;
    int64_t i = r >= 0 ? static_cast<int64_t>(r) : static_cast<int64_t>(r - 1);
    return static_cast<int32_t>(static_cast<uint32_t>(i));
}

// --- ports of any width ----------------------------------------------------------------------------------------
template <class T>
static void put(T& port, const Word& w) {
    uint64_t v = w.empty() ? 0 : w[0];
    if (sizeof(T) > 4 && w.size() > 1) v |= static_cast<uint64_t>(w[1]) << 32;
    port = static_cast<T>(v);
}
template <std::size_t N>
static void put(VlWide<N>& port, const Word& w) {
    for (std::size_t i = 0; i < N; ++i) port[i] = i < w.size() ? w[i] : 0;
}
template <class T>
static Word get(const T& port) {
    uint64_t v = port;
    return sizeof(T) > 4 ? Word{static_cast<uint32_t>(v), static_cast<uint32_t>(v >> 32)}
                         : Word{static_cast<uint32_t>(v)};
}
template <std::size_t N>
static Word get(const VlWide<N>& port) {
    Word w(N);
    for (std::size_t i = 0; i < N; ++i) w[i] = port[i];
    return w;
}
template <class T>
static bool is_set(const T& v) { return v != 0; }

// --- files -----------------------------------------------------------------------------------------------------
static Word parse_hex(const std::string& line) {
    Word w;
    std::string s;
    for (char ch : line)
        if (!isspace(static_cast<unsigned char>(ch))) s += ch;
    for (int end = static_cast<int>(s.size()); end > 0; end -= 8) {
        int begin = end > 8 ? end - 8 : 0;
        w.push_back(static_cast<uint32_t>(strtoul(s.substr(begin, end - begin).c_str(), nullptr, 16)));
    }
    return w;
}

static std::vector<Word> read_words(const std::string& path, long n) {
    std::vector<Word> words;
    std::ifstream in(path);
    std::string line;
    while (static_cast<long>(words.size()) < n && std::getline(in, line))
        if (!line.empty() && line[0] != '/') words.push_back(parse_hex(line));
    if (static_cast<long>(words.size()) < n) {
        fprintf(stderr, "harness: %s has %zu of %ld words\n", path.c_str(), words.size(), n);
        exit(2);
    }
    return words;
}

static void write_hex(FILE* f, const Word& w, int bits) {
    int digits = (bits + 3) / 4;
    std::string s;
    for (int i = digits - 1; i >= 0; --i) {
        uint32_t limb = static_cast<std::size_t>(i / 8) < w.size() ? w[i / 8] : 0;
        s += "0123456789abcdef"[(limb >> (4 * (i % 8))) & 15];
    }
    fprintf(f, "%s\n", s.c_str());
}

struct Source {  // one input stream: its words, how many are sent, the registers that drive the port
    std::vector<Word> mem;
    long n = 0, sent = 0;
    bool valid = false;
    Word data;
};

int main(int argc, char** argv) {
    std::map<std::string, std::string> arg;
    for (int i = 1; i < argc; ++i) {
        const char* eq = strchr(argv[i], '=');
        if (eq) arg[std::string(argv[i], eq - argv[i])] = eq + 1;
    }
    auto num = [&](const char* k, long dflt) { return arg.count(k) ? atol(arg[k].c_str()) : dflt; };
    const long nout = num("nout", 1), frame_out = num("frame_out", 0), out_bits = num("out_bits", 32);
    const bool gaps = num("gaps", 1) != 0, stitched = num("stitched", 0) != 0;
    const long reset_cycles = num("reset_cycles", 2), wd_mul = num("watchdog_mul", 100), wd_add = num("watchdog_add", 100000);
    int32_t seed = static_cast<int32_t>(num("seed", 1));
    Source src[MF_N_IN];
    long nin_total = 0;
    for (int k = 0; k < MF_N_IN; ++k) {
        std::string key = "nin" + std::to_string(k);
        src[k].n = num(key.c_str(), 0);
        src[k].mem = read_words(arg["in" + std::to_string(k)], src[k].n);
        nin_total += src[k].n;
    }
    FILE* out = fopen(arg.count("out") ? arg["out"].c_str() : "out.txt", "w");
    if (!out) {
        perror("harness: out");
        return 2;
    }

    VerilatedContext ctx;
    ctx.commandArgs(1, argv);
    Vtop top(&ctx);
#ifdef MF_FIFOS
    std::vector<long> limits;
    {
        std::ifstream in(arg["fifo_depths"]);
        long d;
        while (in >> d) limits.push_back(d);
    }
    Word lim(limits.size());
    for (std::size_t i = 0; i < limits.size(); ++i) lim[i] = static_cast<uint32_t>(limits[i]);
    put(top.fifo_limit, lim);
    auto fifo_lines = [&]() {
        Word m = get(top.fifo_max);
        for (std::size_t i = 0; i < limits.size(); ++i) fprintf(out, "fifo e%zu %u\n", i, m[i]);
    };
#else
    auto fifo_lines = []() {};
#endif
    top.ap_clk = 0;
    top.ap_rst_n = 0;
    top.in0_V_TVALID = 0;
#if MF_N_IN == 2
    top.in1_V_TVALID = 0;
#endif
    top.out0_V_TREADY = 0;
    top.eval();
    auto edge = [&]() {
        top.ap_clk = 1;
        top.eval();
    };
    for (long i = 0; i < reset_cycles; ++i) {  // the testbench releases reset with the reset_cycles-th edge
        edge();
        top.ap_clk = 0;
        top.eval();
    }
    top.ap_rst_n = 1;
    top.eval();

    long got = 0, cycles = 0;
    bool oready = false;
    const long watchdog = wd_mul * (nin_total + nout) + wd_add;
    for (;;) {
        bool ready[MF_N_IN];
        ready[0] = is_set(top.in0_V_TREADY);
#if MF_N_IN == 2
        ready[1] = is_set(top.in1_V_TREADY);
#endif
        if (is_set(top.out0_V_TVALID) && oready) {
            write_hex(out, get(top.out0_V_TDATA), static_cast<int>(out_bits));
            ++got;
            if (frame_out && got % frame_out == 0) fprintf(out, "frame %ld\n", cycles);
            if (got == nout) {
                fifo_lines();
                if (!stitched) fprintf(out, "cycles %ld\n", cycles);
                fclose(out);
                top.final();
                return 0;
            }
        }
        for (int k = 0; k < MF_N_IN; ++k)
            if (src[k].valid && ready[k]) ++src[k].sent;
        bool valid_next[MF_N_IN];
        for (int k = 0; k < MF_N_IN; ++k) {
            valid_next[k] = src[k].valid;
            if (!(src[k].valid && !ready[k])) {  // AXI: a word once offered stays until accepted
                bool draw = !gaps || (ieee_random(&seed) & 3) != 0;
                valid_next[k] = src[k].sent < src[k].n && draw;
                src[k].data = src[k].sent < src[k].n ? src[k].mem[src[k].sent] : Word();
            }
        }
        bool oready_next = !gaps || (ieee_random(&seed) & 3) != 0;
        if (cycles > watchdog) {
            if (stitched) {
                fprintf(out, "deadlock sent %ld got %ld\n", src[0].sent, got);
                fifo_lines();
            } else {
                printf("tb: watchdog, sent %ld got %ld\n", src[0].sent, got);
            }
            fclose(out);
            top.final();
            return 0;
        }
        edge();  // the design samples this cycle's stimulus; then the stimulus registers take their next values
        for (int k = 0; k < MF_N_IN; ++k) src[k].valid = valid_next[k];
        top.in0_V_TVALID = src[0].valid;
        put(top.in0_V_TDATA, src[0].data);
#if MF_N_IN == 2
        top.in1_V_TVALID = src[1].valid;
        put(top.in1_V_TDATA, src[1].data);
#endif
        oready = oready_next;
        top.out0_V_TREADY = oready;
        ++cycles;
        top.ap_clk = 0;
        top.eval();
    }
}
