// minifinn MinifloatLayerNorm, RTL backend (Verilog-2005; needs custom_ops/mac/mf_mac.v for mf_decode and
// mf_threshold). Contract: custom_ops/minifloat_layernorm.py. Per row of D codes (D / PE words):
//   S_IN    read the row into the row buffer; S1 += a, S2 += a*a (a: the format's integer, mf_decode)
//   S_DIV   V' = D*S2 - S1^2 + EPS; e = bitlength(V') / 2; q = floor(2^(2(R+e)) / V') by restoring division,
//           one numerator bit per cycle (the numerator is a power of two)
//   S_SQRT  r = isqrt(q), one result bit per cycle, from the top bit of the QW-bit root down
//   S_OUT   per word: z = (D*a - S1) * r >>> e, u = SIGNS[c] ? -z : z, code = CODE_FILE[#{k : u >= T[c][k]}]
// AXI-stream valid/ready on both sides; the row buffer is single (a row is read, then written out).
module minifloat_layernorm #(
    parameter D = 16, parameter PE = 1, parameter BITS = 6, parameter E = 3, parameter SIGNED = 1,
    parameter S1W = 16, parameter S2W = 24, parameter VW = 32, parameter NW = 16,
    parameter QW = 19, parameter ZW = 20, parameter R = 16, parameter [VW-1:0] EPS = 1,
    parameter N_THRES = 3, parameter O_BITS = 4, parameter [D-1:0] SIGNS = 0,
    parameter THRESH_FILE = "thresholds.hex", parameter CODE_FILE = "codes.hex"
) (
    input  wire               ap_clk,
    input  wire               ap_rst_n,
    input  wire [PE*BITS-1:0] in0_V_TDATA,
    input  wire               in0_V_TVALID,
    output wire               in0_V_TREADY,
    output reg  [PE*O_BITS-1:0] out0_V_TDATA,
    output reg                out0_V_TVALID,
    input  wire               out0_V_TREADY
);
    localparam NF = D / PE;
    localparam CW = $clog2(N_THRES + 1);
    localparam NUMW = 2 * R + VW + 2;  // the numerator 2^(2(R+e)) and the division remainder
    localparam [1:0] S_IN = 2'd0, S_DIV = 2'd1, S_SQRT = 2'd2, S_OUT = 2'd3;
    localparam DW = (E == 0) ? (SIGNED ? BITS : BITS + 1) : ((1 << E) + BITS - 1 - E);

    reg [PE*BITS-1:0] rowbuf [0:NF-1];
    reg [N_THRES*(ZW+1)-1:0] tmem [0:D-1];
    reg [O_BITS-1:0] cmem [0:N_THRES];
    initial begin
        $readmemh(THRESH_FILE, tmem);
        $readmemh(CODE_FILE, cmem);
    end

    reg [1:0] state;
    reg [31:0] f;                  // word counter of the row
    reg signed [S1W-1:0] s1;
    reg signed [S2W-1:0] s2;
    reg [VW-1:0] v;
    reg [31:0] e, step;
    reg [NUMW-1:0] rem;
    reg [2*QW+1:0] q;
    reg [QW-1:0] root;

    // ---- pass 1: decode the lanes, sums ----------------------------------------------------------------------------
    wire [PE*BITS-1:0] word_in = (state == S_IN) ? in0_V_TDATA : rowbuf[f];
    wire signed [PE*DW-1:0] dec;
    reg signed [S1W-1:0] lane_s1;
    reg signed [S2W-1:0] lane_s2;
    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_dec
            mf_decode #(.BITS(BITS), .E(E), .SIGNED(SIGNED)) d (.code(word_in[p*BITS +: BITS]), .value(dec[p*DW +: DW]));
        end
    endgenerate
    integer i;
    always @* begin
        lane_s1 = 0;
        lane_s2 = 0;
        for (i = 0; i < PE; i = i + 1) begin
            lane_s1 = lane_s1 + $signed(dec[i*DW +: DW]);
            lane_s2 = lane_s2 + $signed(dec[i*DW +: DW]) * $signed(dec[i*DW +: DW]);
        end
    end
    assign in0_V_TREADY = ap_rst_n && (state == S_IN);
    wire take = in0_V_TVALID && in0_V_TREADY;

    // ---- V' and e ------------------------------------------------------------------------------------------------
    wire signed [VW+1:0] v_full = $signed(D) * s2 - s1 * s1 + $signed({2'b00, EPS});
    reg [31:0] vbits;
    always @* begin
        vbits = 0;
        for (i = 0; i < VW; i = i + 1) if (v_full[i]) vbits = i + 1;
    end

    // ---- pass 2: normalize and requantize ------------------------------------------------------------------------
    wire [PE*O_BITS-1:0] result;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_out
            wire [31:0] ch = f * PE + p;
            wire signed [NW-1:0] n = $signed(D) * $signed(dec[p*DW +: DW]) - s1;
            wire signed [NW+QW:0] prod = n * $signed({1'b0, root});
            wire signed [NW+QW:0] zs = prod >>> e;
            wire signed [ZW:0] z = zs[ZW:0];
            wire signed [ZW:0] u = SIGNS[ch] ? -z : z;
            wire [CW-1:0] cnt;
            mf_threshold #(.ACC_BITS(ZW + 1), .N(N_THRES), .OUT_BITS(CW)) thr (.acc(u), .thresholds(tmem[ch]),
                                                                             .count(cnt));
            assign result[p*O_BITS +: O_BITS] = cmem[cnt];
        end
    endgenerate
    wire out_free = !out0_V_TVALID || out0_V_TREADY;
    wire [QW-1:0] one = 1;
    wire [QW-1:0] trial = root | (one << (step - 1));  // square root: the candidate with bit step-1 set
    wire [2*QW+1:0] trial_w = trial;
    wire [2*QW+1:0] trial_sq = trial_w * trial_w;

    always @(posedge ap_clk) begin
        if (take) rowbuf[f] <= in0_V_TDATA;
        if (!ap_rst_n) begin
            state <= S_IN; f <= 0; s1 <= 0; s2 <= 0; out0_V_TVALID <= 1'b0;
        end else begin
            if (out0_V_TVALID && out0_V_TREADY) out0_V_TVALID <= 1'b0;
            case (state)
                S_IN: if (take) begin
                    s1 <= s1 + lane_s1;
                    s2 <= s2 + lane_s2;
                    if (f == NF - 1) begin
                        f <= 0;
                        state <= S_DIV;
                        step <= 0;
                    end else begin
                        f <= f + 1;
                    end
                end
                S_DIV: begin
                    if (step == 0) begin  // latch V' and e, start the division at the numerator's top bit
                        v <= v_full[VW-1:0];
                        e <= vbits / 2;
                        rem <= 0;
                        q <= 0;
                        step <= 2 * (R + vbits / 2) + 1;  // numerator bits still to bring down, plus one
                    end else begin
                        // bring down the next numerator bit (1 only for the leading bit 2^(2(R+e)))
                        if ({rem[NUMW-2:0], (step == 2 * (R + e) + 1) ? 1'b1 : 1'b0} >= v) begin
                            rem <= {rem[NUMW-2:0], (step == 2 * (R + e) + 1) ? 1'b1 : 1'b0} - v;
                            q <= {q[2*QW:0], 1'b1};
                        end else begin
                            rem <= {rem[NUMW-2:0], (step == 2 * (R + e) + 1) ? 1'b1 : 1'b0};
                            q <= {q[2*QW:0], 1'b0};
                        end
                        if (step == 1) begin
                            state <= S_SQRT;
                            root <= 0;
                            step <= QW;
                        end else begin
                            step <= step - 1;
                        end
                    end
                end
                S_SQRT: begin  // step counts down QW..1: try bit step-1
                    if (trial_sq <= q) root <= trial;
                    if (step == 1) begin
                        state <= S_OUT;
                        f <= 0;
                    end else begin
                        step <= step - 1;
                    end
                end
                S_OUT: if (out_free) begin
                    out0_V_TDATA <= result;
                    out0_V_TVALID <= 1'b1;
                    if (f == NF - 1) begin
                        f <= 0;
                        s1 <= 0;
                        s2 <= 0;
                        state <= S_IN;
                    end else begin
                        f <= f + 1;
                    end
                end
            endcase
        end
    end
endmodule
