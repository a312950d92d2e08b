// Command xds-load simulates a fleet of Envoy ADS clients for bench/xds-scale.
//
// The same binary is pointed at Palisade's control plane and at the
// go-control-plane peer, so both face an identical client. Each simulated
// stream behaves like Envoy on ADS: node {id: sim-<i>, cluster, user_agent_name:
// envoy} on its first request, CDS and LDS wildcard, an EDS subscription for the
// clusters CDS named and an RDS subscription for the route names in the
// listener's HttpConnectionManager, and an ACK (version_info + response_nonce,
// or response_nonce for delta) for every response.
//
// Protocol on stdout (JSON lines), stdin and stderr:
//
//	stdout {"event":"ready",...}        every stream has ACKed CDS, LDS, EDS and RDS
//	stdin  change <unix_nanos>          the orchestrator changed the config at that wall-clock time
//	stdout {"event":"converged",...}    every stream has ACKed an EDS response with a new
//	                                    version (or -timeout passed): p50/p99/max ms from the marker
//	stderr                              progress and errors, for humans
//
// A stream "converges" at the wall-clock time its ACK for the first EDS response
// whose version differs from the one it held when the fleet became ready has
// been handed to gRPC. Responses that arrive before the marker is read still
// count: the marker only carries the start time.
//
// To stay out of the measurement the client decodes resource bodies only for
// CDS and LDS (to learn what to subscribe to); EDS and RDS responses are ACKed
// from their envelope.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

const (
	cdsType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	edsType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	ldsType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	rdsType = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	hcmType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)

type options struct {
	address        string
	streams        int
	streamsPerConn int
	nodeCluster    string
	delta          bool
	dialParallel   int
	readyTimeout   time.Duration
	timeout        time.Duration
	nodeEveryReq   bool
	perStream      bool
	cpuProfile     string
}

// fleet is shared by all streams; everything in it is written once per stream or atomically.
type fleet struct {
	opts      options
	start     time.Time
	readyAt   []int64 // unix nanos, per stream
	convAt    []int64 // unix nanos, per stream (first ACK of a new EDS version after ready)
	readyLeft atomic.Int64
	convLeft  atomic.Int64
	failed    atomic.Int64
	allReady  chan struct{}
	allConv   chan struct{}
	armed     atomic.Bool // set once every stream is ready: from then on a new EDS version is "the change"
	pushes    [4]atomic.Int64
	sem       chan struct{}
	// sizes holds the encoded size of the last response of each type on stream 0
	// (a sample for comparing what the servers send).
	sizes [4]atomic.Int64
}

func typeIndex(t string) int {
	switch t {
	case cdsType:
		return 0
	case edsType:
		return 1
	case ldsType:
		return 2
	case rdsType:
		return 3
	}
	return -1
}

func main() {
	var o options
	flag.StringVar(&o.address, "address", "127.0.0.1:18000", "ADS server address host:port")
	flag.IntVar(&o.streams, "streams", 1000, "number of simulated ADS streams (one per simulated proxy)")
	flag.IntVar(&o.streamsPerConn, "streams-per-conn", 1, "ADS streams multiplexed on one gRPC connection (1 = one TCP connection per proxy, as a real fleet)")
	flag.StringVar(&o.nodeCluster, "node-cluster", "bench", "node.cluster sent by every stream (the node group)")
	flag.BoolVar(&o.delta, "delta", false, "use DeltaAggregatedResources instead of SotW")
	flag.IntVar(&o.dialParallel, "dial-parallel", 256, "streams being set up at once (bounds the SYN/accept burst)")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 120*time.Second, "give up if the fleet is not ready by then")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up waiting for convergence this long after the change marker")
	flag.BoolVar(&o.nodeEveryReq, "node-every-request", false, "send node on every request (Envoy's default without set_node_on_first_message_only)")
	flag.BoolVar(&o.perStream, "per-stream", false, "include every stream's convergence latency (ms) in the converged line")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile from ready to converged to this file")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("xds-load: ")
	if o.streams < 1 || o.streamsPerConn < 1 || o.dialParallel < 1 {
		log.Fatal("-streams, -streams-per-conn and -dial-parallel must be positive")
	}
	raiseNoFile(o.streams)

	f := &fleet{
		opts:     o,
		start:    time.Now(),
		readyAt:  make([]int64, o.streams),
		convAt:   make([]int64, o.streams),
		allReady: make(chan struct{}),
		allConv:  make(chan struct{}),
		sem:      make(chan struct{}, o.dialParallel),
	}
	f.readyLeft.Store(int64(o.streams))
	f.convLeft.Store(int64(o.streams))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	nConns := (o.streams + o.streamsPerConn - 1) / o.streamsPerConn
	conns := make([]*grpc.ClientConn, nConns)
	for c := range conns {
		cc, err := grpc.NewClient("passthrough:///"+o.address,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
			// Smaller buffers than grpc-go's 32 KiB defaults keep 10k connections cheap for the client;
			// xDS messages here are a few KiB.
			grpc.WithReadBufferSize(8<<10), grpc.WithWriteBufferSize(8<<10),
		)
		if err != nil {
			log.Fatalf("client for %s: %v", o.address, err)
		}
		conns[c] = cc
	}

	var wg sync.WaitGroup
	for i := range o.streams {
		wg.Add(1)
		cc := conns[i/o.streamsPerConn]
		f.sem <- struct{}{}
		go func() {
			defer wg.Done()
			var err error
			if o.delta {
				err = f.runDelta(ctx, cc, i)
			} else {
				err = f.runSotw(ctx, cc, i)
			}
			if err != nil && ctx.Err() == nil {
				if f.failed.Add(1) <= 5 {
					log.Printf("stream %d: %v", i, err)
				}
			}
		}()
	}
	log.Printf("%d streams started on %d connections in %s", o.streams, nConns, time.Since(f.start).Round(time.Millisecond))

	select {
	case <-f.allReady:
	case <-time.After(o.readyTimeout):
		emit(map[string]any{"event": "error", "error": "ready timeout", "ready": int64(o.streams) - f.readyLeft.Load(),
			"failed": f.failed.Load()})
		os.Exit(2)
	}
	f.armed.Store(true)
	startNs := f.start.UnixNano()
	readyMs := make([]float64, o.streams)
	for i, t := range f.readyAt {
		readyMs[i] = float64(t-startNs) / 1e6
	}
	slices.Sort(readyMs)
	emit(map[string]any{
		"event": "ready", "streams": o.streams, "conns": nConns, "delta": o.delta,
		"elapsedMs":  round(float64(time.Since(f.start).Nanoseconds()) / 1e6),
		"readyP50Ms": round(pct(readyMs, 50)), "readyP99Ms": round(pct(readyMs, 99)), "readyMaxMs": round(readyMs[len(readyMs)-1]),
		"failed": f.failed.Load(), "pushes": f.pushCounts(), "stream0Bytes": f.sizeSample(),
	})
	for i := range f.pushes {
		f.pushes[i].Store(0)
	}

	if o.cpuProfile != "" {
		// From ready on: the marker may be read well after the servers started pushing.
		if pf, err := os.Create(o.cpuProfile); err == nil {
			_ = pprof.StartCPUProfile(pf)
			defer pprof.StopCPUProfile()
		}
	}
	marker := make(chan int64, 1)
	go readMarker(marker)
	var t0 int64
	select {
	case t0 = <-marker:
	case <-time.After(10 * time.Minute):
		emit(map[string]any{"event": "error", "error": "no change marker on stdin"})
		os.Exit(2)
	}

	timedOut := false
	select {
	case <-f.allConv:
	case <-time.After(time.Until(time.Unix(0, t0).Add(o.timeout))):
		timedOut = true
	}
	// Snapshot now: streams still running may write convAt later.
	convMs := make([]float64, 0, o.streams)
	for i := range f.convAt {
		if t := atomic.LoadInt64(&f.convAt[i]); t != 0 {
			convMs = append(convMs, math.Max(0, float64(t-t0)/1e6))
		}
	}
	out := map[string]any{
		"event": "converged", "streams": o.streams, "converged": len(convMs), "timedOut": timedOut,
		"failed": f.failed.Load(), "pushes": f.pushCounts(), "stream0Bytes": f.sizeSample(),
	}
	var sorted []float64
	if len(convMs) > 0 {
		sorted = slices.Clone(convMs)
		slices.Sort(sorted)
		out["minMs"] = round(sorted[0])
		out["p50Ms"] = round(pct(sorted, 50))
		out["p90Ms"] = round(pct(sorted, 90))
		out["p99Ms"] = round(pct(sorted, 99))
		out["maxMs"] = round(sorted[len(sorted)-1])
		sum := 0.0
		for _, v := range sorted {
			sum += v
		}
		out["meanMs"] = round(sum / float64(len(sorted)))
	}
	if o.perStream {
		for i := range convMs {
			convMs[i] = round(convMs[i])
		}
		out["latenciesMs"] = convMs
	}
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	emit(out)
	cancel()
	for _, cc := range conns {
		_ = cc.Close()
	}
	if timedOut {
		os.Exit(3)
	}
}

func (f *fleet) sampleSize(i, ti int, m proto.Message) {
	if i == 0 && ti >= 0 {
		f.sizes[ti].Store(int64(proto.Size(m)))
	}
}

func (f *fleet) sizeSample() map[string]int64 {
	return map[string]int64{"cds": f.sizes[0].Load(), "eds": f.sizes[1].Load(), "lds": f.sizes[2].Load(), "rds": f.sizes[3].Load()}
}

func (f *fleet) pushCounts() map[string]int64 {
	return map[string]int64{"cds": f.pushes[0].Load(), "eds": f.pushes[1].Load(), "lds": f.pushes[2].Load(), "rds": f.pushes[3].Load()}
}

// streamState is what a simulated Envoy remembers on one ADS stream.
type streamState struct {
	acked        [4]bool
	edsNames     []string
	rdsNames     []string
	edsVersion   string
	readyVersion string
	ready        bool
	converged    bool
	released     bool
}

func (f *fleet) node(i int) *core.Node {
	return &core.Node{Id: "sim-" + strconv.Itoa(i), Cluster: f.opts.nodeCluster, UserAgentName: "envoy"}
}

// release frees the set-up slot once the stream has heard from the server.
func (f *fleet) release(st *streamState) {
	if !st.released {
		st.released = true
		<-f.sem
	}
}

func (f *fleet) markReady(i int, st *streamState) {
	if st.ready || !st.acked[0] || !st.acked[1] || !st.acked[2] || !st.acked[3] {
		return
	}
	st.ready = true
	st.readyVersion = st.edsVersion
	f.readyAt[i] = time.Now().UnixNano()
	if f.readyLeft.Add(-1) == 0 {
		close(f.allReady)
	}
}

// edsAcked records convergence: called after the ACK of an EDS response has been sent.
func (f *fleet) edsAcked(i int, st *streamState, changed bool) {
	if !st.ready || st.converged || !f.armed.Load() || !changed {
		return
	}
	st.converged = true
	atomic.StoreInt64(&f.convAt[i], time.Now().UnixNano())
	if f.convLeft.Add(-1) == 0 {
		close(f.allConv)
	}
}

func (f *fleet) runSotw(ctx context.Context, cc *grpc.ClientConn, i int) error {
	st := &streamState{}
	defer f.release(st)
	client := discovery.NewAggregatedDiscoveryServiceClient(cc)
	stream, err := client.StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	node := f.node(i)
	first := true
	send := func(req *discovery.DiscoveryRequest) error {
		if first || f.opts.nodeEveryReq {
			req.Node = node
			first = false
		}
		return stream.Send(req)
	}
	if err := send(&discovery.DiscoveryRequest{TypeUrl: cdsType}); err != nil {
		return err
	}
	if err := send(&discovery.DiscoveryRequest{TypeUrl: ldsType}); err != nil {
		return err
	}
	var edsNonce, rdsNonce, rdsVersion string
	for {
		resp, err := stream.Recv()
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("server closed the stream")
			}
			return err
		}
		f.release(st)
		ti := typeIndex(resp.TypeUrl)
		f.sampleSize(i, ti, resp)
		if ti < 0 {
			// Not something this simulated Envoy subscribed to: ACK it and move on.
			if err := send(&discovery.DiscoveryRequest{TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
				return err
			}
			continue
		}
		if f.armed.Load() {
			f.pushes[ti].Add(1)
		}
		switch ti {
		case 0: // CDS: subscribe EDS to the clusters named, then ACK.
			names, err := clusterEdsNames(resp)
			if err != nil {
				return err
			}
			if !slices.Equal(names, st.edsNames) {
				st.edsNames = names
				if err := send(&discovery.DiscoveryRequest{TypeUrl: edsType, VersionInfo: st.edsVersion, ResponseNonce: edsNonce, ResourceNames: names}); err != nil {
					return err
				}
			}
			if err := send(&discovery.DiscoveryRequest{TypeUrl: cdsType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
				return err
			}
		case 2: // LDS: subscribe RDS to the HCM's route names, then ACK.
			names, err := listenerRdsNames(resp)
			if err != nil {
				return err
			}
			if !slices.Equal(names, st.rdsNames) {
				st.rdsNames = names
				if err := send(&discovery.DiscoveryRequest{TypeUrl: rdsType, VersionInfo: rdsVersion, ResponseNonce: rdsNonce, ResourceNames: names}); err != nil {
					return err
				}
			}
			if err := send(&discovery.DiscoveryRequest{TypeUrl: ldsType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
				return err
			}
		case 1: // EDS
			changed := st.ready && resp.VersionInfo != st.readyVersion
			st.edsVersion, edsNonce = resp.VersionInfo, resp.Nonce
			if err := send(&discovery.DiscoveryRequest{TypeUrl: edsType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce, ResourceNames: st.edsNames}); err != nil {
				return err
			}
			f.edsAcked(i, st, changed)
		case 3: // RDS
			rdsVersion, rdsNonce = resp.VersionInfo, resp.Nonce
			if err := send(&discovery.DiscoveryRequest{TypeUrl: rdsType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce, ResourceNames: st.rdsNames}); err != nil {
				return err
			}
		}
		st.acked[ti] = true
		if ti == 1 && len(st.edsNames) == 0 || ti == 3 && len(st.rdsNames) == 0 {
			st.acked[ti] = false // a response to nothing we asked for does not make the stream ready
		}
		f.markReady(i, st)
	}
}

func (f *fleet) runDelta(ctx context.Context, cc *grpc.ClientConn, i int) error {
	st := &streamState{}
	defer f.release(st)
	client := discovery.NewAggregatedDiscoveryServiceClient(cc)
	stream, err := client.DeltaAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	node := f.node(i)
	first := true
	send := func(req *discovery.DeltaDiscoveryRequest) error {
		if first || f.opts.nodeEveryReq {
			req.Node = node
			first = false
		}
		return stream.Send(req)
	}
	// Empty subscribe on the first request of a type = (legacy) wildcard.
	if err := send(&discovery.DeltaDiscoveryRequest{TypeUrl: cdsType}); err != nil {
		return err
	}
	if err := send(&discovery.DeltaDiscoveryRequest{TypeUrl: ldsType}); err != nil {
		return err
	}
	clusters := map[string][]string{} // cluster name -> its EDS service name(s)
	for {
		resp, err := stream.Recv()
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("server closed the stream")
			}
			return err
		}
		f.release(st)
		ti := typeIndex(resp.TypeUrl)
		f.sampleSize(i, ti, resp)
		if ti >= 0 && f.armed.Load() {
			f.pushes[ti].Add(1)
		}
		switch ti {
		case 0:
			for _, r := range resp.Resources {
				var c cluster.Cluster
				if err := proto.Unmarshal(r.GetResource().GetValue(), &c); err != nil {
					return fmt.Errorf("decode cluster: %w", err)
				}
				clusters[r.Name] = []string{edsName(&c)}
			}
			for _, n := range resp.RemovedResources {
				delete(clusters, n)
			}
			var want []string
			for _, ns := range clusters {
				want = append(want, ns...)
			}
			slices.Sort(want)
			sub, unsub := diff(st.edsNames, want)
			if len(sub)+len(unsub) > 0 {
				st.edsNames = want
				if err := send(&discovery.DeltaDiscoveryRequest{TypeUrl: edsType, ResourceNamesSubscribe: sub, ResourceNamesUnsubscribe: unsub}); err != nil {
					return err
				}
			}
		case 2:
			var want []string
			for _, r := range resp.Resources {
				var l listener.Listener
				if err := proto.Unmarshal(r.GetResource().GetValue(), &l); err != nil {
					return fmt.Errorf("decode listener: %w", err)
				}
				want = append(want, rdsNamesOf(&l)...)
			}
			slices.Sort(want)
			want = slices.Compact(want)
			if sub, _ := diff(st.rdsNames, want); len(sub) > 0 {
				st.rdsNames = append(st.rdsNames, sub...)
				slices.Sort(st.rdsNames)
				if err := send(&discovery.DeltaDiscoveryRequest{TypeUrl: rdsType, ResourceNamesSubscribe: sub}); err != nil {
					return err
				}
			}
		}
		if err := send(&discovery.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce}); err != nil {
			return err
		}
		if ti < 0 {
			continue
		}
		if ti == 1 {
			// In delta every EDS response after ready carries a change.
			f.edsAcked(i, st, st.ready)
		}
		st.acked[ti] = true
		if ti == 1 && len(st.edsNames) == 0 || ti == 3 && len(st.rdsNames) == 0 {
			st.acked[ti] = false
		}
		f.markReady(i, st)
	}
}

func diff(have, want []string) (sub, unsub []string) {
	for _, w := range want {
		if !slices.Contains(have, w) {
			sub = append(sub, w)
		}
	}
	for _, h := range have {
		if !slices.Contains(want, h) {
			unsub = append(unsub, h)
		}
	}
	return sub, unsub
}

func edsName(c *cluster.Cluster) string {
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.GetName()
}

// clusterEdsNames lists, sorted, the EDS names of the EDS clusters in a CDS response.
func clusterEdsNames(resp *discovery.DiscoveryResponse) ([]string, error) {
	names := make([]string, 0, len(resp.Resources))
	for _, r := range resp.Resources {
		var c cluster.Cluster
		if err := proto.Unmarshal(r.GetValue(), &c); err != nil {
			return nil, fmt.Errorf("decode cluster: %w", err)
		}
		if c.GetType() == cluster.Cluster_EDS {
			names = append(names, edsName(&c))
		}
	}
	slices.Sort(names)
	return names, nil
}

// listenerRdsNames lists, sorted and unique, the RDS route names of the HCMs in an LDS response.
func listenerRdsNames(resp *discovery.DiscoveryResponse) ([]string, error) {
	var names []string
	for _, r := range resp.Resources {
		var l listener.Listener
		if err := proto.Unmarshal(r.GetValue(), &l); err != nil {
			return nil, fmt.Errorf("decode listener: %w", err)
		}
		names = append(names, rdsNamesOf(&l)...)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func rdsNamesOf(l *listener.Listener) []string {
	var names []string
	chains := l.GetFilterChains()
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(chains, d)
	}
	for _, fc := range chains {
		for _, flt := range fc.GetFilters() {
			tc := flt.GetTypedConfig()
			if tc == nil || tc.GetTypeUrl() != hcmType {
				continue
			}
			var m hcm.HttpConnectionManager
			if err := proto.Unmarshal(tc.GetValue(), &m); err != nil {
				continue
			}
			if n := m.GetRds().GetRouteConfigName(); n != "" {
				names = append(names, n)
			}
		}
	}
	return names
}

func readMarker(out chan<- int64) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == "change" {
			if ns, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
				out <- ns
				return
			}
		}
		log.Printf("ignoring stdin line %q (want: change <unix_nanos>)", sc.Text())
	}
}

func raiseNoFile(streams int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if need := uint64(streams) + 64; lim.Cur < need {
		log.Printf("warning: RLIMIT_NOFILE %d may be too low for %d connections (use -streams-per-conn)", lim.Cur, streams)
	}
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	// nearest-rank
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

func round(v float64) float64 { return math.Round(v*100) / 100 }

var emitMu sync.Mutex

func emit(v map[string]any) {
	b, _ := json.Marshal(v)
	emitMu.Lock()
	defer emitMu.Unlock()
	os.Stdout.Write(append(b, '\n'))
}
