// Command gcp-server is the go-control-plane peer for bench/xds-scale.
//
// It serves, over one ADS endpoint (SotW and delta), the same configuration that
// Palisade's translator produces for a mesh of -services N HTTP services, from
// go-control-plane's snapshot cache with a NodeHash that groups every node by
// node.cluster — one snapshot for all streams, as Palisade's node groups do.
//
// Each resource type carries its own version (go-control-plane's NewSnapshot
// would stamp one version on every type and so re-push CDS/LDS/RDS on every
// change, which Palisade does not do); a change bumps only the EDS version.
//
// A small HTTP endpoint drives it:
//
//	POST /change  new snapshot: svc-0's endpoint weights change, EDS version+1
//	GET  /ready   200 once serving
//	GET  /stats   open streams, generation
//	GET  /debug/pprof/...  Go's profiler
//
// On stdout it prints one JSON line once listening:
//
//	{"event":"ready","pid":123,"xds":"127.0.0.1:1234","control":"127.0.0.1:1235"}
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
)

const (
	listenerName = "0.0.0.0_15001"
	routeName    = "outbound_15001"
	servicePort  = 8080
	namespace    = "default"
)

// clusterHash groups nodes by node.cluster: every sidecar of a group shares one snapshot.
type clusterHash struct{}

func (clusterHash) ID(node *core.Node) string {
	if node == nil {
		return ""
	}
	return node.GetCluster()
}

func adsSource() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}

func serviceHost(i int) string { return fmt.Sprintf("svc-%d", i) }

func clusterName(i int) string {
	return fmt.Sprintf("outbound|%d||%s.%s", servicePort, serviceHost(i), namespace)
}

func makeCluster(i int) *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 clusterName(i),
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
	}
}

func lbEndpoint(port, weight uint32) *endpoint.LbEndpoint {
	return &endpoint.LbEndpoint{
		HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
			Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
				Protocol:      core.SocketAddress_TCP,
				Address:       "127.0.0.1",
				PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
			}}},
		}},
		LoadBalancingWeight: wrapperspb.UInt32(weight),
	}
}

// makeLoadAssignment: service i has endpoints 127.0.0.1:20000+2i and +1. Generation g
// changes svc-0's weights to (1+g, 1); g = 0 is the initial config (1, 1).
func makeLoadAssignment(i, gen int) *endpoint.ClusterLoadAssignment {
	w0 := uint32(1)
	if i == 0 {
		w0 = uint32(1 + gen)
	}
	base := uint32(20000 + 2*i)
	return &endpoint.ClusterLoadAssignment{
		ClusterName: clusterName(i),
		Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{lbEndpoint(base, w0), lbEndpoint(base+1, 1)},
		}},
	}
}

func makeListener() *listener.Listener {
	routerCfg, err := anypb.New(&router.Router{})
	if err != nil {
		log.Fatal(err)
	}
	manager := &hcm.HttpConnectionManager{
		CodecType:  hcm.HttpConnectionManager_AUTO,
		StatPrefix: routeName,
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: routeName,
		}},
		HttpFilters: []*hcm.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: routerCfg},
		}},
	}
	hcmAny, err := anypb.New(manager)
	if err != nil {
		log.Fatal(err)
	}
	return &listener.Listener{
		Name: listenerName,
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Protocol:      core.SocketAddress_TCP,
			Address:       "0.0.0.0",
			PortSpecifier: &core.SocketAddress_PortValue{PortValue: 15001},
		}}},
		FilterChains: []*listener.FilterChain{{
			Filters: []*listener.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listener.Filter_TypedConfig{TypedConfig: hcmAny},
			}},
		}},
	}
}

func makeRoute(services int) *route.RouteConfiguration {
	rc := &route.RouteConfiguration{Name: routeName}
	for i := range services {
		h := serviceHost(i)
		rc.VirtualHosts = append(rc.VirtualHosts, &route.VirtualHost{
			Name:    fmt.Sprintf("%s.%s:%d", h, namespace, servicePort),
			Domains: []string{h, h + "." + namespace},
			Routes: []*route.Route{{
				Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_Cluster{Cluster: clusterName(i)},
				}},
			}},
		})
	}
	return rc
}

// world builds snapshots; static types keep version "1", EDS carries the generation.
type world struct {
	services  int
	clusters  []types.Resource
	listeners []types.Resource
	routes    []types.Resource
}

func newWorld(services int) *world {
	w := &world{services: services}
	for i := range services {
		w.clusters = append(w.clusters, makeCluster(i))
	}
	w.listeners = []types.Resource{makeListener()}
	w.routes = []types.Resource{makeRoute(services)}
	return w
}

func (w *world) snapshot(gen int) (*cachev3.Snapshot, error) {
	eds := make([]types.Resource, 0, w.services)
	for i := range w.services {
		eds = append(eds, makeLoadAssignment(i, gen))
	}
	s := &cachev3.Snapshot{}
	s.Resources[types.Cluster] = cachev3.NewResources("1", w.clusters)
	s.Resources[types.Endpoint] = cachev3.NewResources(strconv.Itoa(gen+1), eds)
	s.Resources[types.Listener] = cachev3.NewResources("1", w.listeners)
	s.Resources[types.Route] = cachev3.NewResources("1", w.routes)
	if err := s.Consistent(); err != nil {
		return nil, err
	}
	return s, nil
}

func main() {
	xdsAddr := flag.String("xds-address", "127.0.0.1:0", "gRPC ADS listen address")
	ctlAddr := flag.String("control-address", "127.0.0.1:0", "HTTP control listen address")
	services := flag.Int("services", 10, "number of services in the mesh")
	nodeCluster := flag.String("node-cluster", "bench", "node.cluster (node group) the snapshot is set for")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("gcp-server: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var openSotw, openDelta atomic.Int64
	cb := serverv3.CallbackFuncs{
		StreamOpenFunc:        func(context.Context, int64, string) error { openSotw.Add(1); return nil },
		StreamClosedFunc:      func(int64, *core.Node) { openSotw.Add(-1) },
		DeltaStreamOpenFunc:   func(context.Context, int64, string) error { openDelta.Add(1); return nil },
		DeltaStreamClosedFunc: func(int64, *core.Node) { openDelta.Add(-1) },
	}

	snapshotCache := cachev3.NewSnapshotCache(true, clusterHash{}, nil)
	w := newWorld(*services)
	var mu sync.Mutex
	gen := 0
	snap, err := w.snapshot(gen)
	if err != nil {
		log.Fatal(err)
	}
	if err := snapshotCache.SetSnapshot(ctx, *nodeCluster, snap); err != nil {
		log.Fatal(err)
	}

	xds := serverv3.NewServer(ctx, snapshotCache, cb)
	// As go-control-plane's internal/example/server.go: lift grpc-go's small stream cap.
	grpcServer := grpc.NewServer(
		grpc.MaxConcurrentStreams(1000000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 30 * time.Second, PermitWithoutStream: true}),
	)
	discovery.RegisterAggregatedDiscoveryServiceServer(grpcServer, xds)

	lis, err := net.Listen("tcp", *xdsAddr)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := grpcServer.Serve(lis); err != nil {
			log.Println(err)
		}
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(rw http.ResponseWriter, _ *http.Request) {
		rw.WriteHeader(http.StatusOK)
		_, _ = rw.Write([]byte("ready\n"))
	})
	mux.HandleFunc("POST /change", func(rw http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		next, err := w.snapshot(gen + 1)
		if err == nil {
			err = snapshotCache.SetSnapshot(ctx, *nodeCluster, next)
		}
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		gen++
		rw.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{"generation": gen, "edsVersion": strconv.Itoa(gen + 1)})
	})
	mux.HandleFunc("GET /stats", func(rw http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		g := gen
		mu.Unlock()
		rw.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{
			"sotwStreams": openSotw.Load(), "deltaStreams": openDelta.Load(), "generation": g,
		})
	})
	// Go's profiler, for "where does the time go" (e.g. go tool pprof http://CONTROL/debug/pprof/profile?seconds=5).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	ctlLis, err := net.Listen("tcp", *ctlAddr)
	if err != nil {
		log.Fatal(err)
	}
	httpServer := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := httpServer.Serve(ctlLis); err != nil && err != http.ErrServerClosed {
			log.Println(err)
		}
	}()

	line, _ := json.Marshal(map[string]any{
		"event": "ready", "pid": os.Getpid(), "xds": lis.Addr().String(), "control": ctlLis.Addr().String(),
		"services": *services, "nodeCluster": *nodeCluster, "typeUrls": []string{
			resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType,
		},
	})
	fmt.Println(string(line))

	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = httpServer.Shutdown(shutdown)
	grpcServer.Stop()
}
