// Command prom-expfmt parses a Prometheus text exposition (format 0.0.4) with Prometheus's
// own parser (github.com/prometheus/common/expfmt) and prints one JSON document describing
// it, so that Palisade's /metrics output is checked by an implementation that is not ours.
//
//	prom-expfmt [URL]   # scrape URL (GET) or, without one, read the body from stdin
//
// Names are validated with the legacy scheme ([a-zA-Z_:][a-zA-Z0-9_:]*), the one text 0.0.4
// scrapers without UTF-8 support apply. Any parse error, a non-200 status or a Content-Type
// that expfmt does not map to text 0.0.4 exits 1 with the reason on stderr.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type sample struct {
	Labels map[string]string `json:"labels"`
	// Value is the counter/gauge/untyped value, or a histogram's or summary's sample count.
	Value float64 `json:"value"`
	// Buckets is the number of histogram buckets (0 for other types).
	Buckets int `json:"buckets"`
}

type family struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Help    string   `json:"help"`
	Samples []sample `json:"samples"`
}

type report struct {
	ContentType string   `json:"contentType,omitempty"`
	Format      string   `json:"format,omitempty"`
	Families    []family `json:"families"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "prom-expfmt: "+format+"\n", args...)
	os.Exit(1)
}

func valueOf(t dto.MetricType, m *dto.Metric) (float64, int) {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), 0
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), 0
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount()), len(m.GetHistogram().GetBucket())
	case dto.MetricType_SUMMARY:
		return float64(m.GetSummary().GetSampleCount()), 0
	default:
		return m.GetUntyped().GetValue(), 0
	}
}

func main() {
	var body io.Reader = os.Stdin
	var r report
	if len(os.Args) > 1 {
		res, err := http.Get(os.Args[1])
		if err != nil {
			fail("GET %s: %v", os.Args[1], err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			fail("GET %s: status %d", os.Args[1], res.StatusCode)
		}
		r.ContentType = res.Header.Get("Content-Type")
		format := expfmt.ResponseFormat(res.Header)
		if format.FormatType() != expfmt.TypeTextPlain {
			fail("GET %s: Content-Type %q is not Prometheus text 0.0.4 (expfmt reads it as %q)", os.Args[1], r.ContentType, format)
		}
		r.Format = string(format)
		body = res.Body
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(body)
	if err != nil {
		fail("parse: %v", err)
	}
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	sort.Strings(names)
	r.Families = make([]family, 0, len(names))
	for _, name := range names {
		mf := families[name]
		f := family{Name: name, Type: mf.GetType().String(), Help: mf.GetHelp(), Samples: make([]sample, 0, len(mf.GetMetric()))}
		for _, m := range mf.GetMetric() {
			labels := make(map[string]string, len(m.GetLabel()))
			for _, lp := range m.GetLabel() {
				if _, dup := labels[lp.GetName()]; dup {
					fail("%s: duplicate label %q", name, lp.GetName())
				}
				labels[lp.GetName()] = lp.GetValue()
			}
			v, buckets := valueOf(mf.GetType(), m)
			f.Samples = append(f.Samples, sample{Labels: labels, Value: v, Buckets: buckets})
		}
		r.Families = append(r.Families, f)
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fail("write: %v", err)
	}
}
