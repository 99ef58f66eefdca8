package dpsdevice

import (
	"encoding/base64"
	"strings"

	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/issuance"
)

// CSRAPIVersion is the first api-version whose register request may carry
// a csr (DPS's certificate issuance preview); earlier versions have no such
// field, so a csr with one is refused rather than ignored.
const CSRAPIVersion = "2025-07-01"

// DecodeCSR reads a register body's csr: base64 DER PKCS#10, no PEM
// armour. "" is no CSR.
func DecodeCSR(csr, apiVersion string) ([]byte, error) {
	if csr == "" {
		return nil, nil
	}
	if len(apiVersion) < len(CSRAPIVersion) || apiVersion[:len(CSRAPIVersion)] < CSRAPIVersion {
		return nil, fault.New(fault.InvalidArgument, fault.FieldInvalid, "csr needs api-version %s-preview or later (got %q)", CSRAPIVersion, apiVersion)
	}
	if len(csr) > base64.StdEncoding.EncodedLen(issuance.MaxCSR) {
		return nil, fault.New(fault.InvalidArgument, fault.CSRInvalid, "the csr is larger than %d bytes", issuance.MaxCSR)
	}
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(csr))
	if err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.CSRInvalid, err, "the csr is not base64 DER")
	}
	if len(der) == 0 {
		return nil, fault.New(fault.InvalidArgument, fault.CSRInvalid, "the csr is empty")
	}
	return der, nil
}

// Chain is an issued chain as DPS's issuedCertificateChain: base64 DER,
// leaf first.
func Chain(ders [][]byte) []string {
	if len(ders) == 0 {
		return nil
	}
	out := make([]string, len(ders))
	for i, d := range ders {
		out[i] = base64.StdEncoding.EncodeToString(d)
	}
	return out
}
