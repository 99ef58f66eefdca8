package issuance_test

import (
	"context"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/internal/issuance"
	"github.com/zerotouch/zerotouch/internal/storage/docs"
	"github.com/zerotouch/zerotouch/internal/storage/embedded"
)

// BenchmarkIssue: one certificate from a device's CSR (parse, check,
// sign), per CA key type; the registration's cost is in the load tool.
func BenchmarkIssue(b *testing.B) {
	for _, kt := range []issuance.CAKeyType{issuance.CAKeyP256, issuance.CAKeyP384} {
		b.Run(string(kt), func(b *testing.B) {
			ctx := context.Background()
			st, err := embedded.Open(b.TempDir() + "/z.db")
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			store := docs.Issuance{D: st}
			s := sealerB(b)
			ca, err := issuance.NewRootCA(s, "ca", "", kt, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			store.CreateIssuingCA(ctx, ca)
			pol := &issuance.Policy{Name: "p", IssuingCA: "ca"}
			pol.Normalize()
			store.CreatePolicy(ctx, pol)
			a := &issuance.Authority{Store: store, Sealer: s}
			der := csrFor(b, "dev-1", p256(b))
			b.ResetTimer()
			for b.Loop() {
				p, err := a.Policy(ctx, "p")
				if err != nil {
					b.Fatal(err)
				}
				csr, err := issuance.ParseCSR(der)
				if err == nil {
					err = issuance.CheckCSR(csr, "dev-1", p)
				}
				if err != nil {
					b.Fatal(err)
				}
				if _, err := a.Issue(ctx, p, csr, "dev-1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
