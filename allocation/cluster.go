package allocation

import (
	"context"
	"encoding/hex"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// MaxClusterCertificates bounds the client certificates pinned for one hub
// cluster (enough to rotate every node's certificate).
const MaxClusterCertificates = 100

// Cluster is a hub cluster: it owns shards, and it authenticates to
// Zerotouch with client certificates whose SHA-256 thumbprints are pinned
// here and whose subject common name is the cluster's ID.
type Cluster struct {
	ID string
	// Certificates are the lowercase hex SHA-256 thumbprints of the
	// client certificates the cluster's nodes present.
	Certificates []string
	Etag         string
	Created      time.Time
	Updated      time.Time
}

// Validate checks the pinned thumbprints and normalises them.
func (c *Cluster) Validate() error {
	if len(c.Certificates) > MaxClusterCertificates {
		return fault.Invalidf("a hub cluster pins at most %d certificates, not %d", MaxClusterCertificates, len(c.Certificates))
	}
	seen := map[string]bool{}
	for i, t := range c.Certificates {
		t = strings.ToLower(t)
		if b, err := hex.DecodeString(t); err != nil || len(b) != 32 {
			return fault.Invalidf("certificate thumbprint %q is not a hex SHA-256", c.Certificates[i])
		}
		if seen[t] {
			return fault.Invalidf("certificate thumbprint %q is listed twice", t)
		}
		seen[t] = true
		c.Certificates[i] = t
	}
	return nil
}

// Pins reports whether the cluster pins a certificate thumbprint.
func (c *Cluster) Pins(thumbprint string) bool {
	for _, t := range c.Certificates {
		if t == thumbprint {
			return true
		}
	}
	return false
}

// ClusterStore keeps hub clusters, with the same error kinds as Store.
type ClusterStore interface {
	CreateCluster(ctx context.Context, c *Cluster) (etag string, err error)
	GetCluster(ctx context.Context, id string) (*Cluster, error)
	ListClusters(ctx context.Context, token string, limit int) (clusters []*Cluster, next string, err error)
	// UpdateCluster replaces the pinned certificates if c.Etag is current.
	UpdateCluster(ctx context.Context, c *Cluster) (etag string, err error)
	DeleteCluster(ctx context.Context, id, etag string) error
}
