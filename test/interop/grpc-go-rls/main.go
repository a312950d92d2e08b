// Command grpc-go-rls is a grpc-go client of Envoy's rate limit service for
// test/sidecar/quota/rls-grpc-go.test.ts: it calls
// envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit on -target with
// go-control-plane's generated types (an independent encoder and decoder of the
// ratelimit protos).
//
// Commands on stdin, one JSON object a line:
//
//	{"domain": "shop/api", "descriptors": [[["tenant", "acme"]]], "hits": 0}
//
// Each answers one line on stdout: the RateLimitResponse in protojson (proto field
// names), or {"error": "<message>", "code": "<gRPC code>"} when the call fails. EOF
// exits 0. Calls are sequential; each has a 5 s deadline.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rls "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

type command struct {
	Domain      string        `json:"domain"`
	Descriptors [][][2]string `json:"descriptors"`
	Hits        uint32        `json:"hits"`
}

func main() {
	target := flag.String("target", "", "host:port of the rate limit service")
	flag.Parse()
	conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	client := rls.NewRateLimitServiceClient(conn)
	out := bufio.NewWriter(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	marshal := protojson.MarshalOptions{UseProtoNames: true}
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			writeError(out, err.Error(), "")
			continue
		}
		req := &rls.RateLimitRequest{Domain: c.Domain, HitsAddend: c.Hits}
		for _, d := range c.Descriptors {
			desc := &rlcommon.RateLimitDescriptor{}
			for _, e := range d {
				desc.Entries = append(desc.Entries, &rlcommon.RateLimitDescriptor_Entry{Key: e[0], Value: e[1]})
			}
			req.Descriptors = append(req.Descriptors, desc)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := client.ShouldRateLimit(ctx, req)
		cancel()
		if err != nil {
			s, _ := status.FromError(err)
			writeError(out, s.Message(), s.Code().String())
			continue
		}
		b, err := marshal.Marshal(res)
		if err != nil {
			writeError(out, err.Error(), "")
			continue
		}
		out.Write(b)
		out.WriteString("\n")
		out.Flush()
	}
}

func writeError(out *bufio.Writer, msg, code string) {
	b, _ := json.Marshal(map[string]string{"error": msg, "code": code})
	out.Write(b)
	out.WriteString("\n")
	out.Flush()
}
