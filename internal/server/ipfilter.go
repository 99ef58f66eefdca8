package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/dpsservice"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// ipFilterService implements IPFilterService (ADR 21).
type ipFilterService struct {
	pb.UnsafeIPFilterServiceServer
	base
}

func ipFilterToPB(rs *ipfilter.Rules) *pb.IPFilter {
	out := &pb.IPFilter{DefaultAction: string(rs.Default), Etag: rs.Etag}
	for _, r := range rs.Rules {
		out.Rules = append(out.Rules, &pb.IPFilterRule{Name: r.Name, Action: string(r.Action), Prefix: r.Prefix.String(), Target: string(r.Target)})
	}
	return out
}

// GetIPFilter implements IPFilterService.
func (s *ipFilterService) GetIPFilter(ctx context.Context, _ *pb.GetIPFilterRequest) (*pb.IPFilter, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	rs, err := s.admin.GetIPFilter(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return ipFilterToPB(rs), nil
}

// SetIPFilter implements IPFilterService.
func (s *ipFilterService) SetIPFilter(ctx context.Context, req *pb.SetIPFilterRequest) (*pb.IPFilter, error) {
	ctx, err := s.authorize(ctx, access.ServiceConfig)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	in := req.GetIpFilter()
	rs := &ipfilter.Rules{Default: ipfilter.Action(in.GetDefaultAction())}
	if len(in.GetRules()) > ipfilter.MaxRules {
		return nil, s.fail(ctx, ipfilter.TooMany(len(in.GetRules())))
	}
	for _, r := range in.GetRules() {
		p, err := ipfilter.ParsePrefix(r.GetPrefix())
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		rs.Rules = append(rs.Rules, ipfilter.Rule{Name: r.GetName(), Action: ipfilter.Action(r.GetAction()), Prefix: p, Target: ipfilter.Target(r.GetTarget())})
	}
	out, err := s.admin.SetIPFilter(ctx, rs, in.GetEtag(), req.GetAllowSelfLockout())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return ipFilterToPB(out), nil
}

// grpcTarget is the API a gRPC method belongs to.
func grpcTarget(fullMethod string) ipfilter.Target {
	if strings.HasPrefix(fullMethod, "/zerotouch.v1.DeviceRegistrationService/") {
		return ipfilter.Device
	}
	return ipfilter.Management
}

// ipFiltered refuses a gRPC call from an address the IP filter refuses for
// the method's API.
func (s *Server) ipFiltered(ctx context.Context, fullMethod string) error {
	if s.cfg.IPFilter == nil || strings.HasPrefix(fullMethod, "/grpc.health") {
		return nil
	}
	addr, _ := peerInfo(ctx)
	addr = s.cfg.IPFilter.ClientAddr(addr, func(k string) []string { return metadataValues(ctx, k) })
	transport := "grpc"
	if grpcTarget(fullMethod) == ipfilter.Management {
		transport = "grpc-management"
	}
	if err := s.cfg.IPFilter.Check(addr, grpcTarget(fullMethod), transport, requestID(ctx)); err != nil {
		return toStatus(ctx, s.cfg.Log, err, true)
	}
	return nil
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.ipFiltered(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// httpTarget is the API an HTTP path belongs to; ok is false for paths
// the filter does not guard (health checks).
func (s *Server) httpTarget(r *http.Request) (ipfilter.Target, bool) {
	p := r.URL.Path
	switch {
	case p == "/healthz" || p == "/readyz":
		return "", false
	case s.cfg.DPS != nil && strings.HasPrefix(p, "/"+s.cfg.DPSScope+"/registrations/"), strings.HasPrefix(p, "/$iothub/"),
		strings.HasPrefix(p, "/pki/"), // CRLs and OCSP: for devices and hubs
		r.Method == http.MethodPost && isDeviceRESTPath(p):
		return ipfilter.Device, true
	}
	return ipfilter.Management, true
}

// isDeviceRESTPath reports whether p is one of the native REST device
// calls: /v1/registrations/{id}:register, :beginTpmAttestation,
// :completeTpmAttestation (one path segment after the collection).
func isDeviceRESTPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/v1/registrations/")
	if !ok || strings.Contains(rest, "/") {
		return false
	}
	for _, verb := range []string{":register", ":beginTpmAttestation", ":completeTpmAttestation"} {
		if id, ok := strings.CutSuffix(rest, verb); ok && id != "" && !strings.Contains(id, ":") {
			return true
		}
	}
	return false
}

// httpIPFiltered answers 403 IP_FILTERED (DPS's error body on DPS paths)
// for a request from an address the filter refuses for the path's API.
func (s *Server) httpIPFiltered(w http.ResponseWriter, r *http.Request) bool {
	target, ok := s.httpTarget(r)
	if s.cfg.IPFilter == nil || !ok {
		return false
	}
	transport := "rest"
	if target == ipfilter.Management {
		transport = "rest-management"
	}
	err := s.cfg.IPFilter.Check(s.cfg.IPFilter.ClientAddr(r.RemoteAddr, r.Header.Values), target, transport, r.Header.Get("X-Request-Id"))
	if err == nil {
		return false
	}
	id := r.Header.Get("X-Request-Id")
	a := apierr.Classify(r.Context(), s.cfg.Log, id, err, apierr.Device)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	if s.cfg.DPS != nil && strings.HasPrefix(r.URL.Path, "/"+s.cfg.DPSScope+"/") || s.cfg.DPSService != nil && dpsservice.Handles(r.URL.Path) {
		_ = json.NewEncoder(w).Encode(a.DPSBody(id, time.Now()))
		return true
	}
	raw, _ := protojson.Marshal(a.Status().Proto())
	_, _ = w.Write(raw)
	return true
}

// metadataValues is every value of an incoming metadata key.
func metadataValues(ctx context.Context, key string) []string {
	md, _ := metadata.FromIncomingContext(ctx)
	return md.Get(strings.ToLower(key))
}
