// Command grpc-go-interop is a grpc-go xDS client for test/interop/grpc-go.test.ts.
//
// It dials -target (xds:///echo) through grpc-go's own xDS resolver and balancers,
// calls the unary method /palisade.echo.v1.Echo/Echo with raw bytes (the Node echo
// servers answer with their name) and counts the replies per backend name.
//
// The bootstrap comes from -bootstrap-config. grpc-go reads GRPC_XDS_BOOTSTRAP_CONFIG
// once, at package init (internal/envconfig), so setting it from a flag in main would
// be too late; the flag's JSON goes to the public xds.NewXDSResolverWithConfigForTesting
// instead. Without the flag, the registered xds resolver reads the usual env vars.
//
// Two modes:
//
//	-calls N [-wait-for X>Y]   one shot: (poll in batches of 100 until X got more calls
//	                           than Y, bounded by -wait-timeout, then) make N calls,
//	                           print the counts line and exit (1 on error)
//	(no -calls)                commands on stdin, one a line:
//	                             calls N  make N calls, print {"a":N,"b":M}
//	                             quit     exit 0 (so does EOF)
//	                           a failure prints {"error":"..."} and the loop goes on
//
// Calls are sequential; each has a 5 s deadline. Output is one JSON object a line on
// stdout; grpc-go's own logs go to stderr.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"
)

const (
	echoMethod  = "/palisade.echo.v1.Echo/Echo"
	callTimeout = 5 * time.Second
	pollBatch   = 100
)

// rawCodec passes []byte through untouched: requests and replies are opaque bytes.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*p = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "raw" }

func main() {
	target := flag.String("target", "xds:///echo", "dial target")
	calls := flag.Int("calls", 0, "one-shot mode: make N calls, print the counts and exit (0: read commands from stdin)")
	bootstrapConfig := flag.String("bootstrap-config", "", "xDS bootstrap JSON (default: GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG)")
	waitFor := flag.String("wait-for", "", "one-shot mode: before counting, poll until backend X got more calls than Y, as X>Y")
	waitTimeout := flag.Duration("wait-timeout", 15*time.Second, "bound for -wait-for")
	flag.Parse()

	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	conn, err := dial(*target, *bootstrapConfig)
	if err != nil {
		_ = out.Encode(map[string]string{"error": err.Error()})
		os.Exit(1)
	}
	defer conn.Close()

	if *calls > 0 {
		if *waitFor != "" {
			if err := waitForDistribution(conn, *waitFor, *waitTimeout); err != nil {
				_ = out.Encode(map[string]string{"error": err.Error()})
				os.Exit(1)
			}
		}
		counts, err := run(conn, *calls)
		if err != nil {
			_ = out.Encode(map[string]string{"error": err.Error()})
			os.Exit(1)
		}
		_ = out.Encode(counts)
		return
	}

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fields := strings.Fields(in.Text())
		switch {
		case len(fields) == 0:
			continue
		case fields[0] == "quit" && len(fields) == 1:
			return
		case fields[0] == "calls" && len(fields) == 2:
			n, err := strconv.Atoi(fields[1])
			if err != nil || n <= 0 {
				_ = out.Encode(map[string]string{"error": fmt.Sprintf("calls wants a positive integer, got %q", fields[1])})
				continue
			}
			counts, err := run(conn, n)
			if err != nil {
				_ = out.Encode(map[string]string{"error": err.Error()})
				continue
			}
			_ = out.Encode(counts)
		default:
			_ = out.Encode(map[string]string{"error": fmt.Sprintf("unknown command %q (want: calls N | quit)", in.Text())})
		}
	}
}

func dial(target, bootstrapConfig string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	}
	if bootstrapConfig != "" {
		builder, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrapConfig))
		if err != nil {
			return nil, fmt.Errorf("xds resolver from -bootstrap-config: %v", err)
		}
		opts = append(opts, grpc.WithResolvers(builder))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("grpc.NewClient(%q): %v", target, err)
	}
	return conn, nil
}

// run makes n sequential calls and counts replies by backend name; the first failed
// call ends the batch.
func run(conn *grpc.ClientConn, n int) (map[string]int, error) {
	counts := map[string]int{}
	req := []byte("hi")
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		var reply []byte
		err := conn.Invoke(ctx, echoMethod, req, &reply)
		cancel()
		if err != nil {
			return counts, fmt.Errorf("call %d/%d: %v", i+1, n, err)
		}
		counts[string(reply)]++
	}
	return counts, nil
}

func waitForDistribution(conn *grpc.ClientConn, spec string, timeout time.Duration) error {
	more, less, ok := strings.Cut(spec, ">")
	if !ok || more == "" || less == "" {
		return fmt.Errorf("-wait-for wants X>Y, got %q", spec)
	}
	deadline := time.Now().Add(timeout)
	for {
		counts, err := run(conn, pollBatch)
		if err == nil && counts[more] > counts[less] {
			return nil
		}
		if time.Now().After(deadline) {
			last, _ := json.Marshal(counts)
			if err != nil {
				return fmt.Errorf("-wait-for %s: not seen within %v (last batch %s, then %v)", spec, timeout, last, err)
			}
			return fmt.Errorf("-wait-for %s: not seen within %v (last batch %s)", spec, timeout, last)
		}
	}
}
