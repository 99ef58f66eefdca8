package tpm

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"io"

	"github.com/google/go-tpm/tpm2"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// CheckSRK checks the storage root key a DPS TPM device sends: a
// restricted decryption key fixed to its TPM, with SHA-256 names.
func CheckSRK(pub *tpm2.TPMTPublic) error {
	a := pub.ObjectAttributes
	if !a.FixedTPM || !a.FixedParent || !a.Restricted || !a.Decrypt || a.SignEncrypt || pub.NameAlg != tpm2.TPMAlgSHA256 {
		return fault.New(fault.InvalidArgument, fault.TPMKeyAttributesInvalid, "the storage root key must be a restricted decryption key fixed to its TPM")
	}
	if _, err := tpm2.ImportEncapsulationKey(pub); err != nil {
		return fault.Wrap(fault.InvalidArgument, fault.TPMStructureInvalid, err, "the storage root key cannot wrap a key")
	}
	if _, err := symmetricBits(pub); err != nil {
		return err
	}
	return nil
}

func symmetricBits(pub *tpm2.TPMTPublic) (int, error) {
	var sym tpm2.TPMTSymDefObject
	switch pub.Type {
	case tpm2.TPMAlgRSA:
		p, err := pub.Parameters.RSADetail()
		if err != nil {
			return 0, fault.Wrap(fault.InvalidArgument, fault.TPMStructureInvalid, err, "RSA parameters")
		}
		sym = p.Symmetric
	case tpm2.TPMAlgECC:
		p, err := pub.Parameters.ECCDetail()
		if err != nil {
			return 0, fault.Wrap(fault.InvalidArgument, fault.TPMStructureInvalid, err, "ECC parameters")
		}
		sym = p.Symmetric
	default:
		return 0, fault.New(fault.InvalidArgument, fault.KeyUnsupported, "the storage key must be RSA or ECC")
	}
	bits, err := sym.KeyBits.AES()
	if sym.Algorithm != tpm2.TPMAlgAES || err != nil || (*bits != 128 && *bits != 256) {
		return 0, fault.New(fault.InvalidArgument, fault.TPMKeyAttributesInvalid, "the storage key's symmetric algorithm must be AES-128 or AES-256")
	}
	return int(*bits), nil
}

func twoB(b []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...) }

func cfb(key, plain []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(plain))
	//lint:ignore SA1019 TPM 2.0 duplication is defined with CFB mode
	cipher.NewCFBEncrypter(block, make([]byte, aes.BlockSize)).XORKeyStream(out, plain)
	return out, nil
}

// AuthenticationKey builds DPS's TPM "authenticationKey" blob, which hands
// an HMAC key to one TPM and only that TPM (shared/reference/dps-protocol.md
// §1.6.3): the key is duplicated for import under the device's storage root
// key with an inner wrapper whose key travels in a credential that only the
// TPM holding the EK can activate, and only with that storage root key
// loaded. The layout is six TPM2B fields: the credential's ID object and
// encrypted secret, the duplicate and its encrypted seed, the key's public
// area, and an empty data field.
func AuthenticationKey(rand io.Reader, ek, srk *tpm2.TPMTPublic, hmacKey []byte) ([]byte, error) {
	fail := func(err error) ([]byte, error) {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "build the TPM authentication key")
	}
	seedValue := make([]byte, 32)
	innerKey := make([]byte, 16)
	if _, err := io.ReadFull(rand, seedValue); err != nil {
		return fail(err)
	}
	if _, err := io.ReadFull(rand, innerKey); err != nil {
		return fail(err)
	}
	unique := sha256.Sum256(append(append([]byte{}, seedValue...), hmacKey...))
	idPub := tpm2.TPMTPublic{
		Type: tpm2.TPMAlgKeyedHash, NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{UserWithAuth: true, SignEncrypt: true, NoDA: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{Scheme: tpm2.TPMTKeyedHashScheme{
			Scheme: tpm2.TPMAlgHMAC, Details: tpm2.NewTPMUSchemeKeyedHash(tpm2.TPMAlgHMAC, &tpm2.TPMSSchemeHMAC{HashAlg: tpm2.TPMAlgSHA256})}}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BDigest{Buffer: unique[:]}),
	}
	idName, err := Name(&idPub)
	if err != nil {
		return nil, err
	}
	sens := tpm2.TPMTSensitive{SensitiveType: tpm2.TPMAlgKeyedHash, SeedValue: tpm2.TPM2BDigest{Buffer: seedValue},
		Sensitive: tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BSensitiveData{Buffer: hmacKey})}
	sens2B := twoB(tpm2.Marshal(&sens))

	// Inner wrapper: integrity over the sensitive area and the key's name,
	// encrypted under innerKey.
	innerIntegrity := sha256.Sum256(append(append([]byte{}, sens2B...), idName...))
	encSensitive, err := cfb(innerKey, append(twoB(innerIntegrity[:]), sens2B...))
	if err != nil {
		return fail(err)
	}

	// Outer wrapper, to the storage root key.
	srkKEM, err := tpm2.ImportEncapsulationKey(srk)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.TPMStructureInvalid, err, "the storage root key")
	}
	bits, err := symmetricBits(srk)
	if err != nil {
		return nil, err
	}
	seed, inSymSeed, err := srkKEM.Encapsulate(rand, "DUPLICATE")
	if err != nil {
		return fail(err)
	}
	dupSensitive, err := cfb(tpm2.KDFa(crypto.SHA256, seed, "STORAGE", idName, nil, bits), encSensitive)
	if err != nil {
		return fail(err)
	}
	mac := hmac.New(sha256.New, tpm2.KDFa(crypto.SHA256, seed, "INTEGRITY", nil, nil, 256))
	mac.Write(dupSensitive)
	mac.Write(idName)
	duplicate := append(twoB(mac.Sum(nil)), dupSensitive...)

	// The inner key, to the EK, bound to the storage root key's name.
	srkName, err := Name(srk)
	if err != nil {
		return nil, err
	}
	ekKEM, err := tpm2.ImportEncapsulationKey(ek)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.TPMStructureInvalid, err, "the EK")
	}
	idObject, encSecret, err := tpm2.CreateCredential(rand, ekKEM, srkName, innerKey)
	if err != nil {
		return fail(err)
	}
	var blob []byte
	for _, f := range [][]byte{idObject, encSecret, duplicate, inSymSeed, tpm2.Marshal(&idPub), nil} {
		blob = append(blob, twoB(f)...)
	}
	return blob, nil
}
