package loadgen

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"time"
)

// WriteHTML writes rep as one self-contained HTML page: inline CSS and
// inline SVG charts, no script and nothing fetched from anywhere, so it
// opens offline and can be mailed or archived as it is.
func (rep *Report) WriteHTML(w io.Writer) error {
	return reportTemplate.Execute(w, rep.view())
}

type htmlRun struct {
	*Result
	ID     string
	Charts []template.HTML
}

type htmlView struct {
	*Report
	Verdict  string
	OKAll    bool
	Overview template.HTML
	Runs     []htmlRun
	Started  string
}

func (rep *Report) view() htmlView {
	v := htmlView{Report: rep, OKAll: rep.OK(), Started: rep.StartedAt.UTC().Format(time.RFC1123)}
	if v.OKAll {
		v.Verdict = "every invariant held"
	} else {
		v.Verdict = "BROKEN: an invariant failed or a scenario could not run"
	}
	// One percentile plot of every run's headline requests.
	ov := chart{Title: "Latency distribution of each run's first kind of request (HDR percentiles)",
		XLabel: "percentile", YLabel: "latency (ms)", LogY: true, XPercentile: true, W: 900, H: 360}
	for _, r := range rep.Results {
		if len(r.Ops) == 0 {
			continue
		}
		ov.Series = append(ov.Series, percentileSeries(r.Label()+" · "+r.Ops[0].Name, r.Ops[0].Percentiles))
	}
	v.Overview = template.HTML(ov.svg())
	for i, r := range rep.Results {
		run := htmlRun{Result: r, ID: fmt.Sprintf("run-%d", i+1)}
		tp := chart{Title: r.Label() + ": throughput over time", XLabel: "seconds since the load began", YLabel: "completed per second"}
		lt := chart{Title: r.Label() + ": latency over time", XLabel: "seconds since the load began", YLabel: "latency (ms)", LogY: true}
		pc := chart{Title: r.Label() + ": latency percentiles", XLabel: "percentile", YLabel: "latency (ms)", LogY: true, XPercentile: true}
		for j, o := range r.Ops {
			var xs, rate, p50, p99, mx []float64
			for _, t := range o.Timeline {
				xs = append(xs, t.T)
				rate = append(rate, t.PerSec)
				if t.Count == 0 {
					p50, p99, mx = append(p50, math.NaN()), append(p99, math.NaN()), append(mx, math.NaN())
					continue
				}
				p50, p99, mx = append(p50, t.P50Ms), append(p99, t.P99Ms), append(mx, t.MaxMs)
			}
			tp.Series = append(tp.Series, series{Name: o.Name, X: xs, Y: rate})
			if j == 0 {
				lt.Series = append(lt.Series,
					series{Name: o.Name + " p50", X: xs, Y: p50},
					series{Name: o.Name + " p99", X: xs, Y: p99},
					series{Name: o.Name + " max", X: xs, Y: mx})
			}
			pc.Series = append(pc.Series, percentileSeries(o.Name, o.Percentiles))
		}
		run.Charts = []template.HTML{template.HTML(tp.svg()), template.HTML(lt.svg()), template.HTML(pc.svg())}
		v.Runs = append(v.Runs, run)
	}
	return v
}

func percentileSeries(name string, ps []PercentilePoint) series {
	s := series{Name: name}
	for _, p := range ps {
		s.X = append(s.X, p.Percentile)
		s.Y = append(s.Y, math.Max(p.Ms, 0.001))
	}
	return s
}

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"ms":      FormatMs,
	"micros":  FormatMicros,
	"int":     groupInt,
	"num":     groupFloat,
	"pct":     func(f float64) string { return fmt.Sprintf("%.1f %%", f*100) },
	"status":  FormatStatus,
	"usage":   FormatUsage,
	"params":  formatParams,
	"gib":     func(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) },
	"cores":   func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"setting": formatSettings,
	"met": func(m *bool) string {
		switch {
		case m == nil:
			return "n/a"
		case *m:
			return "met"
		}
		return "MISSED"
	},
	"metclass": func(m *bool) string {
		switch {
		case m == nil:
			return "na"
		case *m:
			return "ok"
		}
		return "bad"
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>concertbench report — {{.Started}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1180px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 16px; margin-top: 24px; }
table { border-collapse: collapse; margin: 8px 0 16px; } th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #17692b; } .bad { color: #b00020; font-weight: 600; } .na { color: #777; }
.banner { padding: 10px 14px; border-radius: 6px; font-weight: 600; margin: 12px 0; }
.banner.ok { background: #e6f4ea; } .banner.bad { background: #fde7ea; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.chart { border: 1px solid #e4e4e4; border-radius: 4px; }
svg .ct { font-size: 13px; font-weight: 600; fill: #222; } svg .tk { font-size: 11px; fill: #555; }
svg .cl { font-size: 12px; fill: #333; } svg .lg { font-size: 11px; fill: #333; }
svg .gr { stroke: #eee; stroke-width: 1; } svg .ax { fill: none; stroke: #999; stroke-width: 1; }
code { background: #f4f4f4; padding: 1px 4px; border-radius: 3px; }
.small { color: #666; font-size: 12px; }
</style>
</head>
<body>
<h1>concertbench report</h1>
<div class="small">{{.Started}} · {{printf "%.0f" .Seconds}} s · <code>{{.Command}}</code></div>
<div class="banner {{if .OKAll}}ok{{else}}bad{{end}}" id="verdict">Verdict: {{.Verdict}}</div>

<h2>Machine and server</h2>
<table>
<tr><th>machine</th><td>{{.Machine.Cores}} cores · {{.Machine.CPUModel}} · {{gib .Machine.MemoryBytes}} · {{.Machine.OS}}/{{.Machine.Arch}} {{.Machine.Kernel}} · {{.Machine.GoVersion}} (GOMAXPROCS {{.Machine.GOMAXPROCS}})</td></tr>
<tr><th>load average at start</th><td>{{printf "%.2f" .Machine.LoadAvg1}} (others' work on the machine shows here and in each run's usage)</td></tr>
<tr><th>server</th><td>{{range .Server.Targets}}<code>{{.}}</code> {{end}}</td></tr>
{{if .Server.Settings}}<tr><th>server settings</th><td>{{setting .Server.Settings}} <span class="small">({{.Server.SettingsSource}})</span></td></tr>{{end}}
{{with .Server.Restart}}<tr><th>restart</th><td>ready in {{printf "%.2f" .ReadySeconds}} s after {{int .JournalEvents}} journaled events</td></tr>{{end}}
</table>

<h2>Summary</h2>
<table id="summary">
<tr><th>run</th><th class="n">throughput</th><th></th><th class="n">req/s</th><th>latency of</th><th class="n">p50</th><th class="n">p90</th><th class="n">p99</th><th class="n">p99.9</th><th class="n">max</th><th class="n">errors</th><th>verdict</th></tr>
{{range .Runs}}<tr><td><a href="#{{.ID}}">{{.Label}}</a></td><td class="n">{{num .Throughput}}</td><td>{{.ThroughputUnit}}</td><td class="n">{{num .RequestsPerSec}}</td>
{{if .Ops}}{{with index .Ops 0}}<td>{{.Name}}</td><td class="n">{{ms .Latency.P50Ms}}</td><td class="n">{{ms .Latency.P90Ms}}</td><td class="n">{{ms .Latency.P99Ms}}</td><td class="n">{{ms .Latency.P999Ms}}</td><td class="n">{{ms .Latency.MaxMs}}</td>{{end}}{{else}}<td colspan="6"></td>{{end}}
<td class="n">{{int .ErrorCount}}</td><td>{{if .OK}}<span class="ok">ok</span>{{else}}<span class="bad">BROKEN</span>{{end}}</td></tr>
{{end}}</table>
{{range .Failures}}<p class="bad">could not run: {{.}}</p>{{end}}

<h2>Ceilings and ratios</h2>
<table>
{{with .Ceilings.Postgres}}<tr><th>(a) PostgreSQL raw durable writes</th><td class="n">{{num .RowsPerSec}} rows/s</td><td>multi-row INSERT of journal-like rows, batch {{.Batch}}, {{.Conns}} connections, synchronous_commit={{.SynchronousCommit}}, fsync={{.Fsync}}, PostgreSQL {{.ServerVersion}}
<br/><span class="small">{{range .Points}}batch {{.Batch}}: {{num .RowsPerSec}} rows/s, {{num .CommitsPerSec}} commits/s, commit p99 {{ms .CommitLatency.P99Ms}} · {{end}}</span></td></tr>{{end}}
{{with .Ceilings.HTTP}}<tr><th>(b) server, trivial route</th><td class="n">{{num .RequestsPerSec}} req/s</td><td>GET {{.Path}}, {{.Conns}} connections, p50 {{ms .Latency.P50Ms}}, p99 {{ms .Latency.P99Ms}}</td></tr>{{end}}
{{with .Ceilings.Generator}}<tr><th>(c) load generator</th><td class="n">{{num .RequestsPerSec}} req/s</td><td>{{.Target}}, {{.Conns}} connections, p99 {{ms .Latency.P99Ms}}. {{.Note}}</td></tr>{{end}}
</table>
{{range .Ceilings.Notes}}<p class="small">{{.}}</p>{{end}}
<table id="ratios">
<tr><th class="n">ratio</th><th>of</th><th>figures</th></tr>
{{range .Ratios}}<tr><td class="n">{{pct .Value}}</td><td>{{.Name}}</td><td class="small">{{.Of}}</td></tr>{{end}}
</table>

<h2>Targets</h2>
<table id="targets">
<tr><th>target</th><th>want</th><th>got</th><th></th><th></th></tr>
{{range .Targets}}<tr><td>{{.Name}}</td><td>{{.Want}}</td><td>{{.Got}}</td><td class="{{metclass .Met}}">{{met .Met}}</td><td class="small">{{.Note}}</td></tr>{{end}}
</table>

<h2>Latency distribution</h2>
<div class="charts">{{.Overview}}</div>

{{range .Runs}}
<h2 id="{{.ID}}">{{.Label}}</h2>
<p>{{params .Params}}{{if .OfferedRate}} · open loop at {{num .OfferedRate}}/s, latency from each arrival's intended time{{else}} · closed loop{{end}} · {{printf "%.2f" .ElapsedSeconds}} s{{if .ServerMicrosPerHold}} · <strong>{{micros .ServerMicrosPerHold}} of server CPU per durable hold</strong>{{end}}</p>
<table>
<tr><th>check</th><th></th><th>detail</th></tr>
{{range .Checks}}<tr><td>{{.Name}}</td><td class="{{if .OK}}ok{{else}}bad{{end}}">{{if .OK}}ok{{else}}FAILED{{end}}</td><td>{{.Detail}}</td></tr>{{end}}
</table>
<table>
<tr><th>request</th><th class="n">count</th><th class="n">per s</th><th class="n">p50</th><th class="n">p90</th><th class="n">p99</th><th class="n">p99.9</th><th class="n">max</th><th>status codes</th></tr>
{{range .Ops}}<tr><td>{{.Name}}</td><td class="n">{{int .Count}}</td><td class="n">{{num .PerSec}}</td><td class="n">{{ms .Latency.P50Ms}}</td><td class="n">{{ms .Latency.P90Ms}}</td><td class="n">{{ms .Latency.P99Ms}}</td><td class="n">{{ms .Latency.P999Ms}}</td><td class="n">{{ms .Latency.MaxMs}}</td><td>{{status .Status}}</td></tr>{{end}}
</table>
{{if .Errors}}<table><tr><th>unexpected outcome</th><th class="n">count</th></tr>{{range $k, $v := .Errors}}<tr><td>{{$k}}</td><td class="n">{{int $v}}</td></tr>{{end}}</table>{{end}}
{{with .Usage}}<p class="small">usage: {{usage .}}</p>{{end}}
{{range .Notes}}<p class="small">note: {{.}}</p>{{end}}
<div class="charts">{{range .Charts}}{{.}}{{end}}</div>
{{end}}

{{if .Notes}}<h2>Notes</h2>{{range .Notes}}<p>{{.}}</p>{{end}}{{end}}
<p class="small">Generated by concertbench. Latency is HDR-histogram exact to 0.1 % (p50 and p99 over time: within about 9 %). In open loop, latency counts from each arrival's intended send time, so a server that stalls cannot hide the queueing it causes.</p>
</body>
</html>
`))
