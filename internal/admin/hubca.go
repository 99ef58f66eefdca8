package admin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"slices"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/pki"
)

// Hub certificate validity bounds.
const (
	DefaultHubCertValidity = 90 * 24 * time.Hour
	MaxHubCertValidity     = 397 * 24 * time.Hour
	maxCSRPEM              = 16 << 10
)

// HubCA is the CA that signs hub node certificates. Its key is derived
// from the data key, so every replica has the same CA without storing a
// key; its certificate is self-signed on first use (replicas' copies
// differ only in their signature bytes).
func (s *Service) HubCA() (*pki.Issued, error) {
	s.hubCAOnce.Do(func() {
		if s.Secrets == nil {
			s.hubCAErr = fault.New(fault.FailedPrecondition, fault.SASDisabled, "no data key to derive the hub CA from")
			return
		}
		seed := s.Secrets.Derive("hub-ca-key")
		var key *ecdsa.PrivateKey
		for i := byte(0); key == nil; i++ {
			k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed)
			if err == nil {
				key = k
				break
			}
			sum := sha256.Sum256(append(seed, i)) // out of range: rehash
			seed = sum[:]
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Zerotouch hub CA"},
			NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2046, 1, 1, 0, 0, 0, 0, time.UTC),
			IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		s.hubCA, s.hubCAErr = pki.Issue(tmpl, key, nil)
	})
	return s.hubCA, s.hubCAErr
}

// IssueHubCertificate signs a hub node's CSR as a client certificate of
// the cluster (subject CN = the cluster ID, whatever the CSR asked for)
// and pins it on the cluster, so it authenticates exactly like an uploaded
// certificate and is revoked the same way (unpinned).
func (s *Service) IssueHubCertificate(ctx context.Context, clusterID, csrPEM string, validity time.Duration) (*x509.Certificate, error) {
	if validity == 0 {
		validity = DefaultHubCertValidity
	}
	if validity < time.Hour || validity > MaxHubCertValidity {
		return nil, fault.Invalidf("validity %s is outside 1h-%s", validity, MaxHubCertValidity)
	}
	if len(csrPEM) > maxCSRPEM {
		return nil, fault.Invalidf("csr_pem is larger than %d bytes", maxCSRPEM)
	}
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fault.Invalidf("csr_pem is not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "csr_pem does not parse")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fault.Invalidf("csr_pem is not signed by its key")
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fault.New(fault.InvalidArgument, fault.KeyUnsupported, "the CSR's ECDSA curve must be P-256 or P-384")
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 || k.N.BitLen() > 8192 {
			return nil, fault.New(fault.InvalidArgument, fault.KeyTooWeak, "the CSR's RSA key must be 2048-8192 bits")
		}
	default:
		return nil, fault.New(fault.InvalidArgument, fault.KeyUnsupported, "the CSR's key must be ECDSA P-256/P-384 or RSA")
	}
	c, err := s.Store.GetCluster(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	if len(c.Certificates) >= allocation.MaxClusterCertificates {
		return nil, fault.New(fault.FailedPrecondition, fault.FieldInvalid, "hub cluster %q already pins %d certificates; unpin some first", clusterID, len(c.Certificates))
	}
	ca, err := s.HubCA()
	if err != nil {
		return nil, err
	}
	now := s.Now()
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: clusterID}, NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(validity),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	issued, err := pki.IssueFor(tmpl, csr.PublicKey, ca)
	if err != nil {
		return nil, err
	}
	// Pin it, retrying if the cluster changed meanwhile.
	thumb := enrollment.Thumbprint(issued.Cert.Raw)
	for range 3 {
		c.Certificates = append(slices.Clone(c.Certificates), thumb)
		if _, err = s.UpdateCluster(ctx, c); fault.KindOf(err) != fault.Conflict {
			break
		}
		if c, err = s.Store.GetCluster(ctx, clusterID); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	return issued.Cert, nil
}
