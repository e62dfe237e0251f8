package kubernetes

import (
	"fmt"
	"strings"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// digestMark starts the digest of an image reference pinned by content.
const digestMark = "@sha256:"

// Image is the image reference a revision's pods run. An image-only
// revision (no command) that pins spec.revision.sha256 runs its image by
// that digest, "<image>@sha256:<digest>", which the container runtime
// resolves by content whatever the tag says (the reference grammar allows
// a tag and a digest together). With a command too, sha256 is the local
// binary's digest and the image runs as given; so does an image that
// carries a digest already.
func Image(rev *cutoverv1.Revision) string {
	img, sum := rev.GetImage(), strings.ToLower(imageSha256(rev))
	if sum == "" || img == "" || strings.Contains(img, "@") {
		return img
	}
	return img + digestMark + sum
}

// imageSha256 is the digest spec.revision.sha256 gives the image: only a
// revision without a command pins its image with it.
func imageSha256(rev *cutoverv1.Revision) string {
	if rev.GetCommand() != "" {
		return ""
	}
	return rev.GetSha256()
}

// imageDigest is the hex SHA-256 digest an image reference carries, if any.
func imageDigest(image string) string {
	_, d, ok := strings.Cut(image, digestMark)
	if !ok {
		return ""
	}
	return strings.ToLower(d)
}

// pinConflict reports an image whose own digest is not the one
// spec.revision.sha256 pins.
func pinConflict(rev *cutoverv1.Revision) error {
	d, want := imageDigest(rev.GetImage()), strings.ToLower(imageSha256(rev))
	if d != "" && want != "" && d != want {
		return fmt.Errorf("image %s carries digest sha256:%s, but spec revision.sha256 pins %s", rev.GetImage(), d, want)
	}
	return nil
}
