// minifinn MinifloatConvInpGen, RTL backend (Verilog-2005): sliding-window generator with padding over a
// channels-last code stream (contract in custom_ops/minifloat_conv_inp_gen.py).
// Two frame buffers (ping-pong, simple dual-port memory with a registered read, BRAM-friendly): the writer fills one
// frame while the reader emits the windows of the other in (oh, ow, kh, kw, cf) order; padding positions emit the code PADCODE in every lane.
// A 4-word output FIFO with credit counting absorbs the read latency under AXI-stream backpressure.
module minifloat_conv_inp_gen #(
    parameter H = 4, parameter W = 4, parameter C = 1, parameter SIMD = 1, parameter BITS = 6,
    parameter KH = 3, parameter KW = 3, parameter SH = 1, parameter SW = 1, parameter DH = 1, parameter DW = 1,
    parameter PT = 1, parameter PL = 1, parameter OH = 4, parameter OW = 4, parameter PADCODE = 0
) (
    input  wire                   ap_clk,
    input  wire                   ap_rst_n,
    input  wire [SIMD*BITS-1:0]   in0_V_TDATA,
    input  wire                   in0_V_TVALID,
    output wire                   in0_V_TREADY,
    output wire [SIMD*BITS-1:0]   out0_V_TDATA,
    output wire                   out0_V_TVALID,
    input  wire                   out0_V_TREADY
);
    localparam WD = SIMD * BITS;
    localparam CF = C / SIMD;
    localparam FRAME = H * W * CF;
    localparam AW = $clog2(2 * FRAME + 1);
    localparam [BITS-1:0] PADC = PADCODE;

    reg [WD-1:0] mem [0:2*FRAME-1];

    // ---- writer --------------------------------------------------------------------------------------------------
    reg [AW-1:0] wcnt;
    reg          wbank;
    reg [1:0]    full;
    assign in0_V_TREADY = ap_rst_n && !full[wbank];
    wire         wr = in0_V_TVALID && in0_V_TREADY;

    // ---- reader counters -------------------------------------------------------------------------------------------
    reg [31:0] oh, ow, kh, kw, cf;
    reg        rbank;
    wire [31:0] ihp = oh * SH + kh * DH;  // row in the padded frame
    wire [31:0] iwp = ow * SW + kw * DW;
    wire        pad = (ihp < PT) || (ihp >= PT + H) || (iwp < PL) || (iwp >= PL + W);
    wire [31:0] raddr = rbank * FRAME + (((ihp - PT) * W + (iwp - PL)) * CF) + cf;
    wire        last_cf = (cf == CF - 1), last_kw = (kw == KW - 1), last_kh = (kh == KH - 1);
    wire        last_ow = (ow == OW - 1), last_oh = (oh == OH - 1);
    wire        last_of_frame = last_cf && last_kw && last_kh && last_ow && last_oh;

    // ---- output FIFO (4 words) -------------------------------------------------------------------------------------
    reg [WD-1:0] fifo [0:3];
    reg [1:0]    fhead, ftail;
    reg [2:0]    fcount;
    reg          rd_valid, rd_pad;
    reg [WD-1:0] rd_data;
    wire         pop = out0_V_TVALID && out0_V_TREADY;
    wire         push = rd_valid;
    wire         issue = full[rbank] && (fcount + rd_valid < 3'd3);
    assign out0_V_TVALID = (fcount != 0);
    assign out0_V_TDATA = fifo[fhead];

    always @(posedge ap_clk) begin
        if (wr) mem[wbank * FRAME + wcnt] <= in0_V_TDATA;
        if (issue) rd_data <= mem[raddr];
        if (push) fifo[ftail] <= rd_pad ? {SIMD{PADC}} : rd_data;
        if (!ap_rst_n) begin
            wcnt <= 0; wbank <= 1'b0; full <= 2'b00; rbank <= 1'b0;
            oh <= 0; ow <= 0; kh <= 0; kw <= 0; cf <= 0;
            fhead <= 0; ftail <= 0; fcount <= 0; rd_valid <= 1'b0; rd_pad <= 1'b0;
        end else begin
            if (wr) begin
                if (wcnt == FRAME - 1) begin
                    wcnt <= 0;
                    wbank <= ~wbank;
                end else begin
                    wcnt <= wcnt + 1'b1;
                end
            end
            rd_valid <= issue;
            rd_pad <= pad;
            if (issue) begin
                cf <= last_cf ? 0 : cf + 1;
                if (last_cf) begin
                    kw <= last_kw ? 0 : kw + 1;
                    if (last_kw) begin
                        kh <= last_kh ? 0 : kh + 1;
                        if (last_kh) begin
                            ow <= last_ow ? 0 : ow + 1;
                            if (last_ow) oh <= last_oh ? 0 : oh + 1;
                        end
                    end
                end
                if (last_of_frame) rbank <= ~rbank;
            end
            // a frame is full once written, free again once its last window element has been read
            full <= (full | ((wr && wcnt == FRAME - 1) ? (2'b01 << wbank) : 2'b00))
                         & ~((issue && last_of_frame) ? (2'b01 << rbank) : 2'b00);
            if (push) ftail <= ftail + 1'b1;
            if (pop) fhead <= fhead + 1'b1;
            fcount <= fcount + push - pop;
        end
    end
endmodule
