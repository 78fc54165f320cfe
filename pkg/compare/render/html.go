package render

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
)

//go:embed html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report").Parse(htmlSource))

// palette colours ops in the plot: Tableau 20 without its reds, which mark
// failed points (failColor); opColors goes on with other hues past it.
var palette = []string{
	"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac",
	"#a0cbe8", "#ffbe7d", "#8cd17d", "#f1ce63", "#86bcb6", "#d4a6c8", "#d7b5a6", "#79706e", "#b6992d", "#499894", "#d37295",
}

// failColor rings a failed point in the plot, whatever its NMSE: a tensor
// may fail on its mismatch count, a non-finite value or a text log's sum
// with an NMSE below nmse_max.
const failColor = "#d62728"

// opColors gives every op its own colour: the palette's in order, then
// hues a golden angle apart (skipping the reds near failColor), so no two
// ops share one however many there are.
func opColors(ops []string) map[string]string {
	color := make(map[string]string, len(ops))
	for i, op := range ops {
		if i < len(palette) {
			color[op] = palette[i]
			continue
		}
		// 137.5° apart, in the 300° from 30° to 330°: distinct to the
		// printed tenth of a degree for thousands of ops.
		h := 30 + math.Mod(float64(i-len(palette))*137.50776, 300)
		color[op] = "hsl(" + strconv.FormatFloat(h, 'f', 1, 64) + ",50%,50%)"
	}
	return color
}

type htmlData struct {
	Verdict, VerdictClass, Headline string
	Qualifier, Coverage             string
	Ref, Other, Mode, Tokens        string
	Counts, Tool, Created           string
	Div                             *compare.Divergence
	Blame                           *compare.Blame
	Plot                            plotData
	Layers                          []htmlLayer
	DivRow                          *compare.Row
	DivShape, DivOther, DivMetrics  string
	DivTokens                       string
	WorstHead                       []string
	Worst                           [][]string
	Rows                            []htmlRow
	Dropped                         []htmlDropped
	Warnings                        []string
}

type htmlLayer struct {
	Label                           string
	Tensors, Pass, Fail, Unmeasured int
	Skipped                         int
	WorstNMSE, WorstTensor          string
}

type htmlRow struct {
	Index                   int
	Name, Op, Layer, Status string
	Class                   string
	NMSE, MaxAbs, Mismatch  string
	Other, Note             string
}

type htmlDropped struct{ What, Names string }

type plotData struct {
	Empty          bool
	W, H           int
	X0, X1, Y0, Y1 string // plot area corners
	Points         []plotPoint
	YTicks         []plotTick
	Layers         []plotTick
	Legend         []plotLegend
	Limit          *plotTick
	// Failed is the legend entry of the failure ring, nil when no
	// measured tensor failed.
	Failed *plotLegend
}

type plotPoint struct {
	X, Y, R, Color, Stroke, Title string
}

type plotTick struct {
	Pos, Label string
}

type plotLegend struct {
	X, Y, TX, Color, Op string
}

func f1(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

// buildPlot places each measured row at (graph index, log10 NMSE). NMSE 0
// goes to a band below the axis labelled "0", +Inf and NaN to a band above.
func buildPlot(r *compare.Report) plotData {
	const W = 900
	const left, right, top, bottom = 56.0, 150.0, 14.0, 40.0
	ops := opsOf(r)
	color := opColors(ops)
	// The legend (every op and the failure ring) sets the height when it
	// is taller than the plot's 320.
	H := max(320, int(top+6+16*float64(len(ops))+bottom))
	p := plotData{W: W, H: H}
	lo, hi := math.Inf(1), math.Inf(-1)
	n := 0
	for _, row := range r.Tensors {
		if row.Metrics == nil {
			continue
		}
		n++
		if v := float64(row.Metrics.NMSE); v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
			l := math.Log10(v)
			lo, hi = math.Min(lo, l), math.Max(hi, l)
		}
	}
	limit := math.NaN()
	if r.Policy != nil {
		if v := float64(r.Policy.Default.NMSEMax); v > 0 && !math.IsInf(v, 0) {
			limit = math.Log10(v)
			lo, hi = math.Min(lo, limit), math.Max(hi, limit)
		}
	}
	if n == 0 {
		p.Empty = true
		return p
	}
	if math.IsInf(lo, 1) {
		lo, hi = -1, 0
	}
	lo, hi = math.Floor(lo), math.Ceil(hi)
	if hi <= lo {
		hi = lo + 1
	}
	lo = math.Max(lo, -40)
	// Bands: one unit below lo for zeros, one above hi for Inf/NaN.
	yb, yt := lo-1, hi+1
	x0, x1, y0, y1 := left, float64(W)-right, float64(H)-bottom, top
	p.X0, p.X1, p.Y0, p.Y1 = f1(x0), f1(x1), f1(y0), f1(y1)
	nr := len(r.Tensors)
	xOf := func(i int) float64 {
		if nr <= 1 {
			return (x0 + x1) / 2
		}
		return x0 + (x1-x0)*float64(i)/float64(nr-1)
	}
	// Half a unit of room below the zero band keeps it off the axis.
	yOf := func(v float64) float64 { return y0 + (y1-y0)*(v-yb+0.5)/(yt-yb+0.5) }
	step := 1.0
	for (hi-lo)/step > 8 {
		step *= 2
	}
	p.YTicks = append(p.YTicks, plotTick{Pos: f1(yOf(yb)), Label: "0"})
	for v := lo; v <= hi; v += step {
		p.YTicks = append(p.YTicks, plotTick{Pos: f1(yOf(v)), Label: "1e" + strconv.Itoa(int(v))})
	}
	p.YTicks = append(p.YTicks, plotTick{Pos: f1(yOf(yt)), Label: "Inf/NaN"})
	if !math.IsNaN(limit) {
		p.Limit = &plotTick{Pos: f1(yOf(limit)), Label: "nmse_max " + compare.FormatFloat(math.Pow(10, limit), 3)}
	}
	lastLabel := math.Inf(-1)
	for _, g := range layerGroups(r) {
		if len(g.Rows) == 0 {
			continue
		}
		x := xOf(g.Rows[0])
		t := plotTick{Pos: f1(x)}
		// Label a boundary only when there is room since the last label.
		// "input" (usually one node before layer 0) is left unlabelled.
		if width := 7 * float64(len(g.Label)); g.Label != "input" && x-lastLabel >= width+6 {
			t.Label, lastLabel = g.Label, x
		}
		p.Layers = append(p.Layers, t)
	}
	for i, row := range r.Tensors {
		if row.Metrics == nil {
			continue
		}
		v := float64(row.Metrics.NMSE)
		var y float64
		switch {
		case v == 0:
			y = yb
		case math.IsNaN(v) || math.IsInf(v, 0):
			y = yt
		default:
			y = math.Max(lo, math.Log10(v))
		}
		// The status decides how a point is drawn, its NMSE only where:
		// a failed point is ringed even below nmse_max.
		pt := plotPoint{X: f1(xOf(i)), Y: f1(yOf(y)), R: "3.2", Color: color[opName(row.Op)], Stroke: "none",
			Title: fmt.Sprintf("%s (%s, layer %s): nmse %s, %s", row.Name, opName(row.Op), layerLabel(row.Layer), fnum(v), row.Status.Label())}
		if row.Status == compare.Fail {
			pt.R, pt.Stroke = "4.4", failColor
			if len(row.Reasons) > 0 {
				pt.Title += ": " + row.Reasons[0]
			}
		}
		p.Points = append(p.Points, pt)
	}
	legend := func(i int, color, label string) plotLegend {
		y := top + 6 + 16*float64(i)
		return plotLegend{X: f1(x1 + 16), Y: f1(y), TX: f1(x1 + 26), Color: color, Op: label}
	}
	for i, op := range ops {
		p.Legend = append(p.Legend, legend(i, color[op], op))
	}
	for _, pt := range p.Points {
		if pt.Stroke == failColor {
			f := legend(len(ops), failColor, "failed")
			p.Failed = &f
			break
		}
	}
	return p
}

// HTML writes one self-contained page (inline CSS and SVG, no external
// assets): the verdict, first divergence and blame, a plot of log10 NMSE
// by graph position coloured by op with layer boundaries, the per-layer
// table, the worst elements, every tensor, dropped nodes and warnings.
func (o Options) HTML(w io.Writer, r *compare.Report) error {
	d := htmlData{
		Verdict: strings.ToUpper(string(r.Verdict)), VerdictClass: string(r.Verdict), Headline: headline(r),
		Qualifier: qualifier(r), Coverage: coverageLine(r),
		Ref: sourceLine(r.Meta.Reference), Other: otherLine(r), Mode: r.Meta.Mode, Tokens: tokensLine(r),
		Counts: countsLine(r), Tool: r.Meta.Tool, Created: r.Meta.Created,
		Div: r.FirstDivergence, Blame: r.Blame, Plot: buildPlot(r), Warnings: r.Warnings,
	}
	for _, s := range collapse(r, layerGroups(r)) {
		l := htmlLayer{Label: s.Label, Tensors: len(s.Rows), Pass: s.Pass, Fail: s.Fail, Unmeasured: s.Unmeasured, Skipped: s.Skipped, WorstNMSE: "-"}
		if s.Worst >= 0 {
			l.WorstNMSE, l.WorstTensor = fnum(s.WorstNMSE), r.Tensors[s.Worst].Name
		}
		if s.FirstFail >= 0 {
			l.WorstTensor = r.Tensors[s.FirstFail].Name + " (first fail)"
		}
		if e := emptySpan(s); e != "" {
			l.WorstTensor = e
		}
		d.Layers = append(d.Layers, l)
	}
	if div := r.FirstDivergence; div != nil {
		row := &r.Tensors[div.Row]
		d.DivRow = row
		d.DivShape = shape(row.Ne)
		if row.Other != nil {
			d.DivOther = fmt.Sprintf("%s %s %s (matched by %s)", row.Other.Name, opName(row.Other.Op), shape(row.Other.Ne), row.Other.Match)
		}
		d.DivMetrics = metricsLine(row)
		d.DivTokens = tokenLine(row, 64)
		d.WorstHead, d.Worst = worstTable(r)
	}
	for i := range r.Tensors {
		row := &r.Tensors[i]
		hr := htmlRow{Index: row.Index, Name: row.Name, Op: opName(row.Op), Layer: layerLabel(row.Layer), Status: row.Status.Label(),
			Class: string(row.Status), NMSE: "-", MaxAbs: "-", Mismatch: "-"}
		if m := row.Metrics; m != nil {
			hr.NMSE, hr.MaxAbs, hr.Mismatch = fnum(float64(m.NMSE)), fnum(float64(m.MaxAbs)), fmt.Sprintf("%d/%d", m.Mismatches, m.N)
		}
		if row.Other != nil && row.Other.Name != row.Name {
			hr.Other = row.Other.Name
		}
		notes := append(append([]string(nil), row.Reasons...), row.Notes...)
		hr.Note = strings.Join(notes, "; ")
		d.Rows = append(d.Rows, hr)
	}
	for _, dl := range droppedLists(r) {
		d.Dropped = append(d.Dropped, htmlDropped{What: dl.What, Names: truncList(dl.Names, 1<<30, func(s string) string { return s })})
	}
	if err := htmlTemplate.Execute(w, d); err != nil {
		return fmt.Errorf("render: html: %w", err)
	}
	return nil
}
