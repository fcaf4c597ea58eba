// minifinn MinifloatThresholding, "convert" style (Verilog-2005; needs mf_requant_lib.v): requantization by
// conversion, the contract of custom_ops/requant_convert.py, bit exact.
//
// PE accumulators (ACC_BITS two's complement each, element 0 in the LSBs) per input word; channel fold cf = word
// index mod C/PE. Per lane, with the channel's parameters (PARAM_FILE: word cf holds PE lanes of {shift, bias, mult},
// lane 0 in the LSBs; mult and bias two's complement of MULT_BITS / BIAS_BITS, shift unsigned of SHIFT_BITS):
//   P = acc * mult + bias (exact, PW bits; one DSP48 per lane while ACC_BITS <= 25 and MULT_BITS <= 18: the
//       registered operands, product and sum are its A/B, M and C/P registers); RELU: P = max(P, 0);
//   q = |P|, L = bitlen(q); d = max(shift, L - (MANT + 1)) for a minifloat output (O_EXP > 0), d = shift for an
//       integer output; k = RNE(q / 2^d) (round bit and sticky bits below it, ties to even);
//   minifloat: exponent field e = (d - shift) + (k >> MANT), mantissa field k mod 2^MANT, saturated to the largest
//       code when e > 2^O_EXP - 1, then {e, f} clipped to O_POS_MAX, the largest magnitude code of the format (all
//       ones, or below for a reduced maximum such as OCP E4M3's 448); code = {P < 0 and k != 0, {e, f}};
//   integer: v = +-k clipped to [-O_NEG_MAX, O_POS_MAX], code = its O_BITS two's complement bits.
// Stages: parameter ROM read | product | sum | relu, magnitude | d | k rounded; the code goes combinationally into
// mf_pipe_shell (latency 6 + 2 cycles, one word per cycle). USE_DSP = 0 keeps the product in LUTs (use_dsp "no").
module minifloat_requant_convert #(
    parameter C = 4, parameter PE = 2, parameter ACC_BITS = 16, parameter O_BITS = 6,
    parameter MULT_BITS = 17, parameter BIAS_BITS = 33, parameter SHIFT_BITS = 6,
    parameter PARAM_FILE = "convert.hex",
    parameter RELU = 0,
    parameter O_EXP = 3,
    parameter O_POS_MAX = 31,
    parameter O_NEG_MAX = 0,
    parameter USE_DSP = 1
) (
    input  wire                   ap_clk,
    input  wire                   ap_rst_n,
    input  wire [PE*ACC_BITS-1:0] in0_V_TDATA,
    input  wire                   in0_V_TVALID,
    output wire                   in0_V_TREADY,
    output wire [PE*O_BITS-1:0]   out0_V_TDATA,
    output wire                   out0_V_TVALID,
    input  wire                   out0_V_TREADY
);
    localparam CF = C / PE;
    localparam CFW = (CF > 1) ? $clog2(CF) : 1;
    localparam LAT = 6;
    localparam PRM = SHIFT_BITS + BIAS_BITS + MULT_BITS;
    localparam PROD = ACC_BITS + MULT_BITS;
    localparam PW = ((PROD > BIAS_BITS) ? PROD : BIAS_BITS) + 1;
    localparam LW = $clog2(PW + 1);
    localparam SHMAX = (1 << SHIFT_BITS) - 1;
    localparam DMAX = (SHMAX > PW) ? SHMAX : PW;
    localparam DW = $clog2(DMAX + 1) + 1;         // signed: d and L - (MANT + 1)
    localparam MANT = (O_EXP > 0) ? O_BITS - 1 - O_EXP : 0;
    localparam EMAX = (1 << O_EXP) - 1;
    localparam KW = (O_EXP > 0) ? MANT + 2 : PW;  // k after rounding: <= 2^(MANT+1) for minifloats

    wire take = in0_V_TVALID && in0_V_TREADY;
    reg [CFW-1:0] cf;
    always @(posedge ap_clk) begin
        if (!ap_rst_n) cf <= {CFW{1'b0}};
        else if (take) cf <= (cf == CF - 1) ? {CFW{1'b0}} : cf + 1'b1;
    end
    reg [LAT:1] v;
    always @(posedge ap_clk) begin
        if (!ap_rst_n) v <= {LAT{1'b0}};
        else v <= {v[LAT-1:1], take};
    end

    wire [PE*PRM-1:0] prm;
    mf_rom #(.W(PE * PRM), .DEPTH(CF), .FILE(PARAM_FILE), .BLOCK(0)) params (
        .clk(ap_clk), .addr(cf), .q(prm)
    );

    wire [PE*O_BITS-1:0] codes;
    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            // 1: operands
            reg signed [ACC_BITS-1:0] a1;
            always @(posedge ap_clk) a1 <= in0_V_TDATA[p*ACC_BITS +: ACC_BITS];
            wire signed [MULT_BITS-1:0] m1 = prm[p*PRM +: MULT_BITS];
            wire signed [BIAS_BITS-1:0] b1 = prm[p*PRM + MULT_BITS +: BIAS_BITS];
            wire [SHIFT_BITS-1:0] sh1 = prm[p*PRM + MULT_BITS + BIAS_BITS +: SHIFT_BITS];
            // 2: product; 3: sum
            wire signed [PROD-1:0] prod2;
            if (USE_DSP) begin : g_dsp
                (* use_dsp = "yes" *) reg signed [PROD-1:0] r;
                always @(posedge ap_clk) r <= a1 * m1;
                assign prod2 = r;
            end else begin : g_lut
                (* use_dsp = "no" *) reg signed [PROD-1:0] r;
                always @(posedge ap_clk) r <= a1 * m1;
                assign prod2 = r;
            end
            reg signed [BIAS_BITS-1:0] b2;
            reg [SHIFT_BITS-1:0] sh2, sh3, sh4;
            reg signed [PW-1:0] p3;
            always @(posedge ap_clk) begin
                b2 <= b1;
                sh2 <= sh1;
                p3 <= prod2 + b2;
                sh3 <= sh2;
            end
            // 4: relu, sign and magnitude
            reg neg4;
            reg [PW-1:0] q4;
            always @(posedge ap_clk) begin
                neg4 <= !RELU && p3[PW-1];
                q4 <= p3[PW-1] ? (RELU ? {PW{1'b0}} : -p3) : p3;
                sh4 <= sh3;
            end
            // 5: d = max(shift, L - (MANT + 1)) (minifloats), d = shift (integers)
            wire [LW-1:0] len4;
            mf_bitlen #(.W(PW)) lod (.x(q4), .len(len4));
            wire signed [DW-1:0] top4 = $signed({1'b0, len4}) - (MANT + 1);
            wire signed [DW-1:0] shs4 = $signed({1'b0, sh4});
            reg signed [DW-1:0] d5, ed5;
            reg neg5;
            reg [PW-1:0] q5;
            always @(posedge ap_clk) begin
                d5 <= (O_EXP > 0 && top4 > shs4) ? top4 : shs4;
                ed5 <= (O_EXP > 0 && top4 > shs4) ? top4 - shs4 : {DW{1'b0}};
                neg5 <= neg4;
                q5 <= q4;
            end
            // 6: k = RNE(q / 2^d)
            wire [PW:0] t5 = {q5, 1'b0} >> d5;
            wire [PW-1:0] k5 = t5[PW:1];
            wire [PW-1:0] low5 = ~({PW{1'b1}} << (d5 - 1));
            wire up5 = t5[0] && (|(q5 & low5) || k5[0]);
            reg [PW-1:0] k6;
            reg signed [DW-1:0] ed6;
            reg neg6;
            always @(posedge ap_clk) begin
                k6 <= k5 + up5;
                ed6 <= ed5;
                neg6 <= neg5;
            end
            // the code (combinational, into the shell's FIFO)
            wire [O_BITS-1:0] code;
            if (O_EXP > 0) begin : g_float
                wire [KW-1:0] k = k6[KW-1:0];
                wire [DW:0] e = ed6 + (k >> MANT);
                wire sat = e > EMAX;
                wire [O_EXP-1:0] ef = sat ? EMAX : e[O_EXP-1:0];
                wire [MANT-1:0] ff = sat ? {MANT{1'b1}} : k[MANT-1:0];
                localparam [O_BITS-2:0] MAXC = O_POS_MAX;
                wire [O_BITS-2:0] mc = {ef, ff};
                assign code = {neg6 && (k != 0), (mc > MAXC) ? MAXC : mc};
            end else begin : g_int
                wire [PW:0] kx = {1'b0, k6};
                wire [PW+32:0] lim = neg6 ? O_NEG_MAX : O_POS_MAX;
                wire [PW+32:0] mag = (kx > lim) ? lim : kx;
                wire [PW+32:0] val = neg6 ? -mag : mag;
                assign code = val[O_BITS-1:0];
            end
            assign codes[p*O_BITS +: O_BITS] = code;
        end
    endgenerate

    mf_pipe_shell #(.W(PE * O_BITS), .LAT(LAT)) shell (
        .clk(ap_clk), .rst_n(ap_rst_n), .in_valid(in0_V_TVALID), .in_ready(in0_V_TREADY),
        .pipe_valid(v[LAT]), .pipe_data(codes),
        .out_data(out0_V_TDATA), .out_valid(out0_V_TVALID), .out_ready(out0_V_TREADY)
    );
endmodule
