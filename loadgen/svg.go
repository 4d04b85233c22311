package loadgen

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// A line chart drawn as inline SVG: no script, no font or file to fetch,
// so the report opens offline and prints as it shows.
type chart struct {
	Title, XLabel, YLabel string
	W, H                  int
	LogY                  bool
	// XPercentile: x values are percentiles, drawn on the 1/(1-q) axis
	// of a latency percentile (HDR) plot.
	XPercentile bool
	Series      []series
}

type series struct {
	Name string
	X, Y []float64
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

// pctX maps a percentile to the x axis of a percentile plot: log10 of
// 1/(1-q), capped at 99.9999.
func pctX(p float64) float64 {
	q := math.Min(p/100, 0.999999)
	return math.Log10(1 / (1 - q))
}

func (c chart) svg() string {
	if c.W == 0 {
		c.W = 640
	}
	if c.H == 0 {
		c.H = 300
	}
	const ml, mr, mt, mb = 64, 16, 30, 44
	legendRows := (len(c.Series) + 2) / 3
	height := c.H + legendRows*18 + 8
	pw, ph := float64(c.W-ml-mr), float64(c.H-mt-mb)

	// Ranges.
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	n := 0
	for _, s := range c.Series {
		for i := range s.X {
			x, y := s.X[i], s.Y[i]
			if c.XPercentile {
				x = pctX(x)
			}
			if math.IsNaN(y) || (c.LogY && y <= 0) {
				continue
			}
			xmin, xmax = math.Min(xmin, x), math.Max(xmax, x)
			ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
			n++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" role="img" width="%d" height="%d" viewBox="0 0 %d %d">`, c.W, height, c.W, height)
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(c.Title))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#fff"/>`, c.W, height)
	fmt.Fprintf(&b, `<text x="%d" y="18" class="ct">%s</text>`, ml, html.EscapeString(c.Title))
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="cl">no data</text></svg>`, ml+10, mt+30)
		return b.String()
	}
	if c.XPercentile {
		xmin, xmax = 0, math.Max(xmax, 3)
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	var yticks []float64
	if c.LogY {
		lo, hi := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
		if hi == lo {
			hi++
		}
		ymin, ymax = math.Pow(10, lo), math.Pow(10, hi)
		for e := lo; e <= hi; e++ {
			yticks = append(yticks, math.Pow(10, e))
		}
	} else {
		ymin = 0
		if ymax <= 0 {
			ymax = 1
		}
		step := niceStep(ymax / 5)
		ymax = math.Ceil(ymax/step) * step
		for v := 0.0; v <= ymax+step/2; v += step {
			yticks = append(yticks, v)
		}
	}
	sx := func(x float64) float64 { return ml + (x-xmin)/(xmax-xmin)*pw }
	sy := func(y float64) float64 {
		if c.LogY {
			return mt + ph - (math.Log10(y)-math.Log10(ymin))/(math.Log10(ymax)-math.Log10(ymin))*ph
		}
		return mt + ph - (y-ymin)/(ymax-ymin)*ph
	}

	// Grid and axes.
	for _, t := range yticks {
		y := sy(t)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="gr"/>`, ml, y, c.W-mr, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="tk" text-anchor="end">%s</text>`, ml-6, y+4, tickLabel(t))
	}
	if c.XPercentile {
		for _, p := range []float64{0, 90, 99, 99.9, 99.99, 99.999, 99.9999} {
			x := pctX(p)
			if x > xmax+1e-9 {
				break
			}
			px := sx(x)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" class="gr"/>`, px, mt, px, mt+ph)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tk" text-anchor="middle">%s%%</text>`, px, mt+ph+16, strconv.FormatFloat(p, 'f', -1, 64))
		}
	} else {
		step := niceStep((xmax - xmin) / 6)
		for v := math.Ceil(xmin/step) * step; v <= xmax+step/1e6; v += step {
			px := sx(v)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" class="gr"/>`, px, mt, px, mt+ph)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tk" text-anchor="middle">%s</text>`, px, mt+ph+16, tickLabel(v))
		}
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" class="ax"/>`, ml, mt, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="cl" text-anchor="middle">%s</text>`, ml+pw/2, mt+ph+34, html.EscapeString(c.XLabel))
	fmt.Fprintf(&b, `<text x="14" y="%.1f" class="cl" text-anchor="middle" transform="rotate(-90 14 %.1f)">%s</text>`,
		mt+ph/2, mt+ph/2, html.EscapeString(c.YLabel))

	// Series.
	for si, s := range c.Series {
		color := palette[si%len(palette)]
		var d strings.Builder
		pen := false
		pts := 0
		for i := range s.X {
			x, y := s.X[i], s.Y[i]
			if c.XPercentile {
				x = pctX(x)
			}
			if math.IsNaN(y) || (c.LogY && y <= 0) {
				pen = false
				continue
			}
			cmd := "L"
			if !pen {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, sx(x), sy(math.Max(math.Min(y, ymax), ymin)))
			pen = true
			pts++
		}
		if pts == 0 {
			continue
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.8" class="series"><title>%s</title></path>`,
			strings.TrimSpace(d.String()), color, html.EscapeString(s.Name))
		if pts <= 40 {
			for i := range s.X {
				x, y := s.X[i], s.Y[i]
				if c.XPercentile {
					x = pctX(x)
				}
				if math.IsNaN(y) || (c.LogY && y <= 0) {
					continue
				}
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.2" fill="%s"/>`, sx(x), sy(math.Max(math.Min(y, ymax), ymin)), color)
			}
		}
	}

	// Legend, below the plot, three per row.
	for si, s := range c.Series {
		row, col := si/3, si%3
		x := float64(ml) + float64(col)*pw/3
		y := float64(c.H) + float64(row)*18 + 10
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="12" height="4" fill="%s"/>`, x, y-4, palette[si%len(palette)])
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="lg">%s</text>`, x+16, y, html.EscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// niceStep rounds a raw step up to 1, 2 or 5 × 10^k.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= raw {
			return m * e
		}
	}
	return 10 * e
}

func tickLabel(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case math.Abs(v) >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
