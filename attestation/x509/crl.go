package x509

import (
	"bytes"
	"crypto/sha256"
	cx509 "crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"slices"
	"time"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Revocation of manufacturer certificates (ADR 23): the checks that make a
// certificate revocation list usable for a device's certificates. Fetching
// CRLs, keeping them and deciding what a missing one means is the caller's.

// MaxCRLBytes bounds a CRL (DER or PEM), uploaded or fetched.
const MaxCRLBytes = 10 << 20

// ClockSkew is how far in the future a CRL's or OCSP answer's thisUpdate
// may lie.
const ClockSkew = 5 * time.Minute

// CRL extensions, and CRL entry extensions, that the checks know.
var (
	oidCRLNumber        = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRL         = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDP        = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidAuthorityKeyID   = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidFreshestCRL      = asn1.ObjectIdentifier{2, 5, 29, 46}
	oidAuthorityInfo    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidReasonCode       = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidInvalidityDate   = asn1.ObjectIdentifier{2, 5, 29, 24}
	oidCertificateIssue = asn1.ObjectIdentifier{2, 5, 29, 29}
)

// reasonRemoveFromCRL marks an entry that a delta CRL removes: not a
// revocation.
const reasonRemoveFromCRL = 8

// DecodeCRL returns the DER of a CRL given as DER or as one PEM block of
// type "X509 CRL", refusing anything over MaxCRLBytes.
func DecodeCRL(data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, fault.Invalidf("the CRL is empty")
	}
	if len(data) > MaxCRLBytes {
		return nil, fault.Invalidf("the CRL is %d bytes, at most %d allowed", len(data), MaxCRLBytes)
	}
	if data[0] == 0x30 { // a DER SEQUENCE
		return data, nil
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fault.Invalidf("the CRL is neither DER nor PEM")
	}
	if block.Type != "X509 CRL" {
		return nil, fault.Invalidf("the CRL's PEM block is %q, want X509 CRL", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fault.Invalidf("the CRL's PEM holds more than one block")
	}
	return block.Bytes, nil
}

// CRLEntry is one revoked certificate of a CRL.
type CRLEntry struct {
	At     time.Time
	Reason int
}

// CRL is a certificate revocation list checked against the certificate
// that signed it: complete (not a delta), direct (not indirect), for all
// reasons. It is immutable.
type CRL struct {
	// Issuer is the NameKey of the CRL issuer's raw name, which is the
	// raw issuer name of the certificates it covers (a name, not an
	// identity: see revocation.IssuerID).
	Issuer string
	// Number is the CRL number (nil when absent).
	Number                 *big.Int
	ThisUpdate, NextUpdate time.Time
	// onlyUsers, onlyCAs and partition narrow the certificates it
	// covers (its issuing distribution point).
	onlyUsers, onlyCAs bool
	partition          []string
	revoked            map[string]CRLEntry
}

// NameKey is the hex of the first 128 bits of the SHA-256 of a raw (DER)
// name (CRL.Issuer). It names an issuer by name only: what registrations
// record and the disabling pass matches is the verified issuer's subject
// and key (revocation.IssuerID), since two CAs may share a name.
func NameKey(rawName []byte) string {
	sum := sha256.Sum256(rawName)
	return hex.EncodeToString(sum[:16])
}

// SerialHex is a serial number as CRLs and registrations key it:
// lowercase hex without leading zeros.
func SerialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}

// CheckCRL parses a DER CRL and checks it for use: its issuer is issuer's
// subject and issuer's key signed it (issuer must be a CA allowed to sign
// CRLs), it has a nextUpdate after its thisUpdate, it is not a delta CRL,
// not indirect and not limited to some reasons, and it carries no critical
// extension the checks do not know (RFC 5280 section 6.3.3). Failures are
// InvalidArgument (FIELD_INVALID).
func CheckCRL(der []byte, issuer *cx509.Certificate) (*CRL, error) {
	if len(der) > MaxCRLBytes {
		return nil, fault.Invalidf("the CRL is %d bytes, at most %d allowed", len(der), MaxCRLBytes)
	}
	rl, err := cx509.ParseRevocationList(der)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "the CRL does not parse")
	}
	if !bytes.Equal(rl.RawIssuer, issuer.RawSubject) {
		return nil, fault.Invalidf("the CRL's issuer is not the CA's subject (%s)", issuer.Subject)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "the CRL is not signed by the CA %s", issuer.Subject)
	}
	if rl.NextUpdate.IsZero() || !rl.NextUpdate.After(rl.ThisUpdate) {
		return nil, fault.Invalidf("the CRL has no nextUpdate after its thisUpdate")
	}
	c := &CRL{Issuer: NameKey(rl.RawIssuer), Number: rl.Number, ThisUpdate: rl.ThisUpdate, NextUpdate: rl.NextUpdate,
		revoked: make(map[string]CRLEntry, len(rl.RevokedCertificateEntries))}
	for _, ext := range rl.Extensions {
		switch {
		case ext.Id.Equal(oidDeltaCRL):
			return nil, fault.Invalidf("the CRL is a delta CRL; give the complete CRL")
		case ext.Id.Equal(oidIssuingDP):
			if err := c.parseIssuingDP(ext.Value); err != nil {
				return nil, err
			}
		case ext.Id.Equal(oidCRLNumber), ext.Id.Equal(oidAuthorityKeyID), ext.Id.Equal(oidFreshestCRL), ext.Id.Equal(oidAuthorityInfo):
		case ext.Critical:
			return nil, fault.Invalidf("the CRL has an unknown critical extension %s", ext.Id)
		}
	}
	for _, e := range rl.RevokedCertificateEntries {
		for _, ext := range e.Extensions {
			switch {
			case ext.Id.Equal(oidCertificateIssue):
				return nil, fault.Invalidf("the CRL names other issuers (an indirect CRL)")
			case ext.Id.Equal(oidReasonCode), ext.Id.Equal(oidInvalidityDate):
			case ext.Critical:
				return nil, fault.Invalidf("a CRL entry has an unknown critical extension %s", ext.Id)
			}
		}
		if e.SerialNumber == nil || e.ReasonCode == reasonRemoveFromCRL {
			continue
		}
		c.revoked[SerialHex(e.SerialNumber)] = CRLEntry{At: e.RevocationTime, Reason: e.ReasonCode}
	}
	return c, nil
}

// parseIssuingDP reads the issuing distribution point extension: which
// certificates the CRL covers.
func (c *CRL) parseIssuingDP(der []byte) error {
	bad := fault.Invalidf("the CRL's issuing distribution point does not parse")
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &seq); err != nil || len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence {
		return bad
	}
	flag := func(el asn1.RawValue) (bool, error) {
		if el.IsCompound || len(el.Bytes) != 1 {
			return false, bad
		}
		return el.Bytes[0] != 0, nil
	}
	for b := seq.Bytes; len(b) > 0; {
		var el asn1.RawValue
		var err error
		if b, err = asn1.Unmarshal(b, &el); err != nil || el.Class != asn1.ClassContextSpecific {
			return bad
		}
		var on bool
		switch el.Tag {
		case 0: // distributionPoint: a partitioned CRL
			uris, err := fullNameURIs(el.Bytes)
			if err != nil {
				return err
			}
			c.partition = uris
			continue
		case 3:
			return fault.Invalidf("the CRL covers only some revocation reasons; give a CRL for all reasons")
		case 1, 2, 4, 5:
			if on, err = flag(el); err != nil {
				return err
			}
		default:
			return bad
		}
		switch {
		case el.Tag == 1:
			c.onlyUsers = on
		case el.Tag == 2:
			c.onlyCAs = on
		case el.Tag == 4 && on:
			return fault.Invalidf("the CRL is an indirect CRL")
		case el.Tag == 5 && on:
			return fault.Invalidf("the CRL covers only attribute certificates")
		}
	}
	if c.onlyUsers && c.onlyCAs {
		return fault.Invalidf("the CRL covers neither end-entity nor CA certificates")
	}
	return nil
}

// fullNameURIs reads a DistributionPointName (the content of the [0]
// distributionPoint) and returns its fullName's URIs.
func fullNameURIs(der []byte) ([]string, error) {
	bad := fault.Invalidf("the CRL's issuing distribution point name does not parse")
	var choice asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &choice); err != nil || len(rest) > 0 || choice.Class != asn1.ClassContextSpecific {
		return nil, bad
	}
	if choice.Tag != 0 {
		return nil, fault.Invalidf("the CRL's distribution point is named relative to its issuer, which is not supported")
	}
	var uris []string
	for b := choice.Bytes; len(b) > 0; {
		var gn asn1.RawValue
		var err error
		if b, err = asn1.Unmarshal(b, &gn); err != nil || gn.Class != asn1.ClassContextSpecific {
			return nil, bad
		}
		if gn.Tag == 6 { // uniformResourceIdentifier
			uris = append(uris, string(gn.Bytes))
		}
	}
	return uris, nil
}

// Covers reports whether the CRL speaks for cert (whose issuer it is):
// its scope admits end-entity or CA certificates as cert is one, and a
// partitioned CRL covers only certificates that name one of its
// distribution points.
func (c *CRL) Covers(cert *cx509.Certificate) bool {
	isCA := cert.BasicConstraintsValid && cert.IsCA
	if c.onlyUsers && isCA || c.onlyCAs && !isCA {
		return false
	}
	if len(c.partition) == 0 {
		return true
	}
	for _, dp := range cert.CRLDistributionPoints {
		if slices.Contains(c.partition, dp) {
			return true
		}
	}
	return false
}

// CoversPoint reports whether the CRL, fetched from the distribution
// point url that cert names, speaks for cert: Covers, and a partitioned
// CRL names url among its distribution points (RFC 5280 6.3.3 b.2).
func (c *CRL) CoversPoint(cert *cx509.Certificate, url string) bool {
	return c.Covers(cert) && (len(c.partition) == 0 || slices.Contains(c.partition, url))
}

// CoversAsMuch reports whether c, fetched again from the distribution
// point url that old came from, covers every kind of certificate (end
// entity, CA) that old covers, and url.
func (c *CRL) CoversAsMuch(old *CRL, url string) bool {
	return (old.onlyCAs || !c.onlyCAs) && (old.onlyUsers || !c.onlyUsers) &&
		(len(c.partition) == 0 || slices.Contains(c.partition, url))
}

// Lookup returns the entry revoking the serial, if any.
func (c *CRL) Lookup(serial *big.Int) (CRLEntry, bool) {
	e, ok := c.revoked[SerialHex(serial)]
	return e, ok
}

// Fresh reports whether now lies between thisUpdate (less ClockSkew) and
// nextUpdate.
func (c *CRL) Fresh(now time.Time) bool {
	return !now.Before(c.ThisUpdate.Add(-ClockSkew)) && now.Before(c.NextUpdate)
}

// Len is the number of revoked serials.
func (c *CRL) Len() int { return len(c.revoked) }

// Serials returns the revoked serials (SerialHex), in no order.
func (c *CRL) Serials() []string {
	out := make([]string, 0, len(c.revoked))
	for s := range c.revoked {
		out = append(out, s)
	}
	return out
}

// Has reports whether the CRL lists the serial (SerialHex).
func (c *CRL) Has(serial string) bool {
	_, ok := c.revoked[serial]
	return ok
}

// Newer reports whether c supersedes old from the same issuer: a higher
// CRL number, or (without numbers) a later thisUpdate.
func (c *CRL) Newer(old *CRL) bool {
	if c.Number != nil && old.Number != nil && c.Number.Cmp(old.Number) != 0 {
		return c.Number.Cmp(old.Number) > 0
	}
	return c.ThisUpdate.After(old.ThisUpdate)
}
