// Terminal text and SVG for an Explanation.
//
// The SVG marks every drawn cell as <rect class="cell KIND ..."> so that tools
// and tests can find them: KIND is input, padding (a convolution's zero padding),
// kernel, output, cropped (what a transposed convolution's padding removed),
// overlap, matrix or matrix-transpose. Output cells added by output_padding
// also carry output-padding; the highlighted input cell carries highlight and
// the cells its taps reach carry reached. Cells have data-row / data-col (grid
// coordinates, negative in a leading frame); overlap cells data-count; matrix
// cells data-value.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>

#include "tconv/explain.hpp"

namespace tconv {
namespace {

std::string format_value(double v) {
  char buffer[32];
  if (v == std::floor(v) && std::fabs(v) < 1e6) std::snprintf(buffer, sizeof buffer, "%.0f", v);
  else std::snprintf(buffer, sizeof buffer, "%.3g", v);
  return buffer;
}

std::string cell_name(const Explanation& e, const ExplainGrid& grid, char prefix, std::int64_t flat) {
  std::string name = prefix + std::to_string(flat);
  if (e.spatial_rank == 2) name += "(" + std::to_string(flat / grid.cols) + "," + std::to_string(flat % grid.cols) + ")";
  return name;
}

// The label of each cell: its value, or its flat index when there are none.
std::vector<std::string> cell_labels(const ExplainGrid& grid, char prefix) {
  std::vector<std::string> labels;
  for (std::int64_t k = 0; k < grid.cells(); ++k) {
    labels.push_back(grid.values.empty() ? prefix + std::to_string(k)
                                         : format_value(grid.values[static_cast<std::size_t>(k)]));
  }
  return labels;
}

std::size_t widest(const std::vector<std::string>& labels) {
  std::size_t w = 1;
  for (const auto& l : labels) w = std::max(w, l.size());
  return w;
}

void print_table(std::ostringstream& out, const std::vector<std::string>& labels, std::int64_t cols) {
  const std::size_t w = widest(labels);
  for (std::size_t k = 0; k < labels.size(); ++k) {
    if (k % static_cast<std::size_t>(cols) == 0) out << "  ";
    out << std::string(w - labels[k].size() + 1, ' ') << labels[k];
    if ((k + 1) % static_cast<std::size_t>(cols) == 0) out << "\n";
  }
}

std::string size_text(const ExplainGrid& grid, int rank) {
  return rank == 1 ? std::to_string(grid.cols) : std::to_string(grid.rows) + "x" + std::to_string(grid.cols);
}

std::string headline(const Explanation& e) {
  return std::string(conv_kind_name(e.kind)) + " " + std::to_string(e.spatial_rank) + "-D: input " +
         size_text(e.input, e.spatial_rank) + ", kernel " + size_text(e.kernel, e.spatial_rank) + ", " + e.parameters +
         " -> output " + size_text(e.output, e.spatial_rank);
}

// ---------------------------------------------------------------- SVG drawing

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::string number(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", v);
  return buffer;
}

constexpr const char* kHighlight = "#f08c00";
constexpr const char* kInputFill = "#d0e2f5";
constexpr const char* kKernelFill = "#d8efc8";
constexpr const char* kOutputFill = "#e6dcf4";
constexpr const char* kOutputPaddingFill = "#ffe58a";
constexpr const char* kFrameFill = "#f2f2f2";
constexpr double kTitleHeight = 34;
constexpr double kGap = 36;

class Svg {
 public:
  void rect(double x, double y, double w, double h, const std::string& cls, const std::string& fill,
            const std::string& extra = "") {
    body_ << "<rect class=\"" << cls << "\" x=\"" << number(x) << "\" y=\"" << number(y) << "\" width=\"" << number(w)
          << "\" height=\"" << number(h) << "\" fill=\"" << fill << "\"" << extra << "/>\n";
  }
  void text(double x, double y, const std::string& content, double size, const std::string& extra = "") {
    body_ << "<text x=\"" << number(x) << "\" y=\"" << number(y) << "\" font-size=\"" << number(size) << "\"" << extra
          << ">" << escape(content) << "</text>\n";
  }
  void title(double x, double y, const std::string& content) { text(x, y, content, 15, " font-weight=\"bold\""); }
  std::string document(double width, double height) const {
    // Whole pixels, so that a renderer's PNG has exactly the document's size.
    width = std::ceil(width);
    height = std::ceil(height);
    std::ostringstream out;
    out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << number(width) << "\" height=\"" << number(height)
        << "\" viewBox=\"0 0 " << number(width) << " " << number(height)
        << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
        << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        << body_.str() << "</svg>\n";
    return out.str();
  }

 private:
  std::ostringstream body_;
};

// How one cell of a grid panel looks; `cls` empty means not drawn.
struct CellLook {
  std::string cls;
  std::string fill;
  std::string label;
  std::string extra;  // attributes: data-*, stroke
  std::string corner;  // small orange note: the kernel value a reached cell receives
};

struct GridPanel {
  std::string title;
  std::string caption;
  std::int64_t rows, cols;
  Margin row_frame, col_frame;
  std::function<CellLook(std::int64_t row, std::int64_t col)> look;
};

std::string position_attributes(std::int64_t row, std::int64_t col) {
  return " data-row=\"" + std::to_string(row) + "\" data-col=\"" + std::to_string(col) + "\"";
}

double grid_width(const GridPanel& p, double cell) {
  return static_cast<double>(p.cols + p.col_frame.before + p.col_frame.after) * cell;
}
double grid_height(const GridPanel& p, double cell) {
  return static_cast<double>(p.rows + p.row_frame.before + p.row_frame.after) * cell;
}
// Captions are short clauses joined by "; ", drawn one clause a line.
std::vector<std::string> caption_lines(const std::string& caption) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < caption.size()) {
    const std::size_t end = std::min(caption.find("; ", start), caption.size());
    lines.push_back(caption.substr(start, end - start));
    start = end + 2;
  }
  return lines;
}

double caption_width(const std::string& caption) {
  double width = 0;
  for (const auto& line : caption_lines(caption)) width = std::max(width, 6.0 * static_cast<double>(line.size()));
  return width;
}

double caption_height(const std::string& caption) { return 8 + 14 * static_cast<double>(caption_lines(caption).size()); }

void draw_caption(Svg& svg, double x, double y, const std::string& caption) {
  for (const auto& line : caption_lines(caption)) {
    y += 14;
    svg.text(x, y, line, 11, " fill=\"#555\"");
  }
}

double panel_width(const GridPanel& p, double cell) {
  return std::max({grid_width(p, cell), 8.5 * static_cast<double>(p.title.size()), caption_width(p.caption)});
}
double panel_height(const GridPanel& p, double cell) {
  return kTitleHeight + grid_height(p, cell) + caption_height(p.caption);
}

void draw_grid(Svg& svg, double x, double y, const GridPanel& p, double cell) {
  svg.title(x, y + 16, p.title);
  const double top = y + kTitleHeight;
  const double font = std::min(14.0, cell * 0.42);
  for (std::int64_t r = -p.row_frame.before; r < p.rows + p.row_frame.after; ++r) {
    for (std::int64_t c = -p.col_frame.before; c < p.cols + p.col_frame.after; ++c) {
      const CellLook look = p.look(r, c);
      if (look.cls.empty()) continue;
      const double cx = x + static_cast<double>(c + p.col_frame.before) * cell;
      const double cy = top + static_cast<double>(r + p.row_frame.before) * cell;
      svg.rect(cx, cy, cell, cell, look.cls, look.fill, position_attributes(r, c) + look.extra);
      if (!look.label.empty() && font * 0.6 * static_cast<double>(look.label.size()) < cell * 0.95 && cell >= 12) {
        svg.text(cx + cell / 2, cy + cell / 2 + font * 0.35, look.label, font, " text-anchor=\"middle\"");
      }
      if (!look.corner.empty() && cell >= 30) {
        svg.text(cx + cell - 2, cy + 9, look.corner, 8, " text-anchor=\"end\" fill=\"#c05800\"");
      }
    }
  }
  draw_caption(svg, x, top + grid_height(p, cell), p.caption);
}

const char* kCellStroke = " stroke=\"#666\" stroke-width=\"0.6\"";
const char* kFrameStroke = " stroke=\"#999\" stroke-width=\"0.8\" stroke-dasharray=\"3,2\"";
const char* kReachedStroke = " stroke=\"#f08c00\" stroke-width=\"2.5\"";
const char* kReachedFrameStroke = " stroke=\"#f08c00\" stroke-width=\"2\" stroke-dasharray=\"3,2\"";

// White (0) to dark red (maximum).
std::string heat(std::int64_t count, std::int64_t maximum) {
  const double f = maximum > 0 ? static_cast<double>(count) / static_cast<double>(maximum) : 0.0;
  const int r = static_cast<int>(255 - 15 * f), g = static_cast<int>(255 - 150 * f), b = static_cast<int>(255 - 200 * f);
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "#%02x%02x%02x", r, g, b);
  return buffer;
}

// Blue whose depth follows |value| / largest.
std::string matrix_fill(double value, double largest) {
  if (value == 0) return "white";
  const double f = 0.25 + 0.75 * std::min(1.0, std::fabs(value) / largest);
  const int r = static_cast<int>(255 - 200 * f), g = static_cast<int>(255 - 140 * f);
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "#%02x%02xff", r, g);
  return buffer;
}

std::int64_t largest_overlap(const Explanation& e) {
  return e.overlap.empty() ? 0 : *std::max_element(e.overlap.begin(), e.overlap.end());
}

const WindowCell* window_at(const Explanation& e, std::int64_t row, std::int64_t col) {
  for (const auto& w : e.window) {
    if (w.row == row && w.col == col) return &w;
  }
  return nullptr;
}

std::vector<GridPanel> grid_panels(const Explanation& e) {
  const auto input_labels = cell_labels(e.input, 'x');
  const auto output_labels = cell_labels(e.output, 'y');
  const std::int64_t max_overlap = largest_overlap(e);
  const bool transposed = e.kind == ConvKind::conv_transpose;

  GridPanel input{"Input " + size_text(e.input, e.spatial_rank),
                  e.input.has_frame() ? "orange: the highlighted cell; dashed: zero padding"
                                      : "orange: the highlighted cell",
                  e.input.rows, e.input.cols, e.input.row_frame, e.input.col_frame,
                  [&e, input_labels](std::int64_t r, std::int64_t c) -> CellLook {
                    if (!e.input.contains(r, c)) {
                      return {"cell padding", kFrameFill, "0", kFrameStroke, ""};
                    }
                    const std::int64_t flat = r * e.input.cols + c;
                    if (flat == e.highlighted) return {"cell input highlight", kHighlight, input_labels[flat], kCellStroke, ""};
                    return {"cell input", kInputFill, input_labels[flat], kCellStroke, ""};
                  }};
  GridPanel kernel{"Kernel " + size_text(e.kernel, e.spatial_rank),
                   "tap values", e.kernel.rows, e.kernel.cols, {}, {},
                   [&e](std::int64_t r, std::int64_t c) -> CellLook {
                     return {"cell kernel", kKernelFill,
                             format_value(e.kernel.values[static_cast<std::size_t>(r * e.kernel.cols + c)]), kCellStroke, ""};
                   }};
  GridPanel output{"Output " + size_text(e.output, e.spatial_rank),
                   std::string(transposed ? "orange: reached by the highlighted input cell"
                                          : "orange: cells that read the highlighted input cell") +
                       "; corner: the kernel value it is multiplied by",
                   e.output.rows, e.output.cols, e.output.row_frame, e.output.col_frame,
                   [&e, output_labels](std::int64_t r, std::int64_t c) -> CellLook {
                     const WindowCell* reached = window_at(e, r, c);
                     const std::string tap_note =
                         reached ? "\u00d7" + format_value(e.kernel.values[static_cast<std::size_t>(reached->tap)]) : "";
                     if (!e.output.contains(r, c)) {
                       return {reached ? "cell cropped reached" : "cell cropped", kFrameFill, "",
                               reached ? kReachedFrameStroke : kFrameStroke, tap_note};
                     }
                     const bool padded = r >= e.output.rows - e.output_padding_rows ||
                                         c >= e.output.cols - e.output_padding_cols;
                     std::string cls = "cell output";
                     if (padded) cls += " output-padding";
                     if (reached) cls += " reached";
                     return {cls, padded ? kOutputPaddingFill : kOutputFill,
                             output_labels[static_cast<std::size_t>(r * e.output.cols + c)],
                             reached ? kReachedStroke : kCellStroke, tap_note};
                   }};
  if (e.output.has_frame()) output.caption += "; dashed: cropped by padding";
  if (e.output_padding_rows + e.output_padding_cols > 0) output.caption += "; yellow: added by output_padding";
  GridPanel overlap{"Overlap: kernel taps per output cell", "", e.output.rows, e.output.cols, {}, {},
                    [&e, max_overlap](std::int64_t r, std::int64_t c) -> CellLook {
                      const std::int64_t n = e.overlap[static_cast<std::size_t>(r * e.output.cols + c)];
                      return {"cell overlap", heat(n, max_overlap), std::to_string(n),
                              kCellStroke + std::string(" data-count=\"") + std::to_string(n) + "\"", ""};
                    }};
  return {input, kernel, output, overlap};
}

void draw_heat_legend(Svg& svg, double x, double y, std::int64_t max_overlap) {
  svg.text(x, y, "taps landing", 11, " fill=\"#555\"");
  const std::int64_t steps = std::min<std::int64_t>(max_overlap, 9);
  for (std::int64_t s = 0; s <= steps; ++s) {
    const std::int64_t count = steps == 0 ? 0 : s * max_overlap / steps;
    const double sy = y + 8 + static_cast<double>(s) * 20;
    svg.rect(x, sy, 16, 16, "legend", heat(count, max_overlap), kCellStroke);
    svg.text(x + 22, sy + 12, std::to_string(count), 11);
  }
}


// A matrix drawn cell by cell; large ones only by their non-zero cells, on a
// white background, so the document stays small.
struct MatrixPanel {
  std::string title;
  std::string caption;
  std::int64_t rows, cols;
  std::string cls;
  std::function<double(std::int64_t row, std::int64_t col)> value;
  std::int64_t marked_row = -1, marked_col = -1;
};

constexpr std::int64_t kMostMatrixCellsDrawn = 4096;

double matrix_panel_width(const MatrixPanel& p, double cell) {
  return std::max({static_cast<double>(p.cols) * cell, 8.5 * static_cast<double>(p.title.size()),
                   caption_width(p.caption)});
}
double matrix_panel_height(const MatrixPanel& p, double cell) {
  return kTitleHeight + static_cast<double>(p.rows) * cell + caption_height(p.caption);
}

void draw_matrix(Svg& svg, double x, double y, const MatrixPanel& p, double cell, double largest) {
  svg.title(x, y + 16, p.title);
  const double top = y + kTitleHeight;
  const double width = static_cast<double>(p.cols) * cell, height = static_cast<double>(p.rows) * cell;
  const bool every_cell = p.rows * p.cols <= kMostMatrixCellsDrawn;
  svg.rect(x, top, width, height, "matrix-background", "white", " stroke=\"#666\" stroke-width=\"0.8\"");
  const double font = std::min(13.0, cell * 0.45);
  for (std::int64_t r = 0; r < p.rows; ++r) {
    for (std::int64_t c = 0; c < p.cols; ++c) {
      const double v = p.value(r, c);
      if (v == 0 && !every_cell) continue;
      const double cx = x + static_cast<double>(c) * cell, cy = top + static_cast<double>(r) * cell;
      svg.rect(cx, cy, cell, cell, "cell " + p.cls, matrix_fill(v, largest),
               position_attributes(r, c) + " data-value=\"" + format_value(v) + "\"" +
                   (every_cell ? " stroke=\"#bbb\" stroke-width=\"0.5\"" : ""));
      const std::string label = format_value(v);
      // Zeros are left blank in small cells so that the non-zero pattern stands out.
      if (cell >= 16 && font * 0.6 * static_cast<double>(label.size()) < cell * 0.95 && (v != 0 || cell >= 20)) {
        svg.text(cx + cell / 2, cy + cell / 2 + font * 0.35, label, font,
                 std::string(" text-anchor=\"middle\"") + (v == 0 ? " fill=\"#bbb\"" : ""));
      }
    }
  }
  const std::string mark = " stroke=\"#f08c00\" stroke-width=\"2.5\"";
  if (p.marked_col >= 0) {
    svg.rect(x + static_cast<double>(p.marked_col) * cell, top, cell, height, "marked-column", "none", mark);
  }
  if (p.marked_row >= 0) {
    svg.rect(x, top + static_cast<double>(p.marked_row) * cell, width, cell, "marked-row", "none", mark);
  }
  draw_caption(svg, x, top + height, p.caption);
}

std::vector<MatrixPanel> matrix_panels(const Explanation& e) {
  const bool transposed = e.kind == ConvKind::conv_transpose;
  const std::string dims = std::to_string(e.matrix_rows) + " x " + std::to_string(e.matrix_cols);
  const std::string dims_t = std::to_string(e.matrix_cols) + " x " + std::to_string(e.matrix_rows);
  MatrixPanel matrix{"Matrix M (" + dims + "): output = M x input",
                     "one row per output cell, one column per input cell; orange: the highlighted input's column",
                     e.matrix_rows, e.matrix_cols, "matrix",
                     [&e](std::int64_t r, std::int64_t c) { return e.matrix[static_cast<std::size_t>(r * e.matrix_cols + c)]; }};
  matrix.marked_col = e.highlighted;
  MatrixPanel transpose{"Transpose M\u1d40 (" + dims_t + ")",
                        std::string(transposed ? "the convolution's matrix" : "the transposed convolution's matrix") +
                            "; orange: the highlighted input's row",
                        e.matrix_cols, e.matrix_rows, "matrix-transpose",
                        [&e](std::int64_t r, std::int64_t c) { return e.matrix[static_cast<std::size_t>(c * e.matrix_cols + r)]; }};
  transpose.marked_row = e.highlighted;
  return {matrix, transpose};
}

}  // namespace

std::string explanation_svg(const Explanation& e) {
  Svg svg;
  constexpr double kMargin = 20;
  double y = kMargin + 4;
  const std::string title = headline(e);
  svg.text(kMargin, y + 12, title, 17, " font-weight=\"bold\"");
  y += 30;
  for (const auto& formula : e.size_formulas) {
    svg.text(kMargin, y + 10, formula, 12, " font-family=\"DejaVu Sans Mono, monospace\"");
    y += 18;
  }
  y += 12;
  double width = 10.2 * static_cast<double>(title.size()) + 2 * kMargin;
  for (const auto& formula : e.size_formulas) width = std::max(width, 7.3 * static_cast<double>(formula.size()) + 2 * kMargin);

  const std::vector<GridPanel> grids = grid_panels(e);
  std::int64_t extent = 1;
  for (const auto& p : grids) {
    extent = std::max({extent, p.rows + p.row_frame.before + p.row_frame.after,
                       p.cols + p.col_frame.before + p.col_frame.after});
  }
  const double cell = std::clamp(std::floor(300.0 / static_cast<double>(extent)), 8.0, 40.0);
  double x = kMargin, row_height = 0, legend_x = 0;
  for (const auto& p : grids) {
    draw_grid(svg, x, y, p, cell);
    legend_x = x + grid_width(p, cell) + 16;  // beside the last panel's grid: the overlap map
    x += panel_width(p, cell) + kGap;
    row_height = std::max(row_height, panel_height(p, cell));
  }
  const std::int64_t max_overlap = largest_overlap(e);
  draw_heat_legend(svg, legend_x, y + kTitleHeight + 10, max_overlap);
  width = std::max({width, x, legend_x + 90});
  row_height = std::max(row_height, kTitleHeight + 30 + 20.0 * static_cast<double>(std::min<std::int64_t>(max_overlap, 9) + 1));
  y += row_height + kGap;

  const std::vector<MatrixPanel> matrices = matrix_panels(e);
  const double rows = static_cast<double>(e.matrix_rows), cols = static_cast<double>(e.matrix_cols);
  const double matrix_cell = std::clamp(std::floor(std::min(1000.0 / (rows + cols), 600.0 / std::max(rows, cols))), 1.0, 26.0);
  double largest = 0;
  for (double v : e.matrix) largest = std::max(largest, std::fabs(v));
  x = kMargin;
  row_height = 0;
  for (const auto& p : matrices) {
    draw_matrix(svg, x, y, p, matrix_cell, largest);
    x += matrix_panel_width(p, matrix_cell) + kGap;
    row_height = std::max(row_height, matrix_panel_height(p, matrix_cell));
  }
  width = std::max(width, x - kGap + kMargin);
  return svg.document(width, y + row_height + kMargin);
}

std::string explanation_text(const Explanation& e, int width) {
  std::ostringstream out;
  out << headline(e) << "\n";
  for (const auto& formula : e.size_formulas) out << "  " << formula << "\n";
  auto section = [&](const std::string& title, const std::vector<std::string>& labels, std::int64_t cols) {
    out << "\n" << title << ":\n";
    print_table(out, labels, cols);
  };
  section("input " + size_text(e.input, e.spatial_rank) + (e.input.values.empty() ? " (cells by index)" : ""),
          cell_labels(e.input, 'x'), e.input.cols);
  section("kernel " + size_text(e.kernel, e.spatial_rank), cell_labels(e.kernel, 'w'), e.kernel.cols);
  section("output " + size_text(e.output, e.spatial_rank) + (e.output.values.empty() ? " (cells by index)" : ""),
          cell_labels(e.output, 'y'), e.output.cols);
  std::vector<std::string> counts;
  for (auto n : e.overlap) counts.push_back(std::to_string(n));
  section("overlap (kernel taps landing on each output cell)", counts, e.output.cols);

  std::vector<std::string> entries;
  for (double v : e.matrix) entries.push_back(format_value(v));
  const std::size_t entry_width = widest(entries) + 1;
  const bool as_numbers = 2 + entry_width * static_cast<std::size_t>(e.matrix_cols) <= static_cast<std::size_t>(width);
  out << "\nmatrix M (" << e.matrix_rows << " x " << e.matrix_cols << "), flat output = M x flat input"
      << (as_numbers ? "" : ", too wide for numbers: # non-zero, . zero") << ":\n";
  if (as_numbers) {
    print_table(out, entries, e.matrix_cols);
  } else {
    for (std::int64_t r = 0; r < e.matrix_rows; ++r) {
      out << "  ";
      for (std::int64_t c = 0; c < e.matrix_cols; ++c) out << (e.matrix[static_cast<std::size_t>(r * e.matrix_cols + c)] != 0 ? '#' : '.');
      out << "\n";
    }
  }

  out << "\nwhich output cells each input cell touches:\n";
  for (std::int64_t in = 0; in < e.input.cells(); ++in) {
    out << "  " << cell_name(e, e.input, 'x', in) << " ->";
    const auto& touched = e.touched[static_cast<std::size_t>(in)];
    if (touched.empty()) out << " nothing";
    for (auto o : touched) out << " " << cell_name(e, e.output, 'y', o);
    out << "\n";
  }
  return out.str();
}

}  // namespace tconv
