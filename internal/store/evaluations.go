package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// PutEvaluations stores evaluation records in one transaction, each
// replacing the stored record of its rollout. A record whose rollout is
// neither the app's current rollout nor in its kept history is left out:
// history retention dropped that rollout, and its record with it, so a
// late write must not bring the record back. Idempotent; safe for
// concurrent use.
func (b *Bolt) PutEvaluations(_ context.Context, recs ...*cutoverv1.RolloutEvaluations) error {
	if len(recs) == 0 {
		return nil
	}
	data := make([][]byte, len(recs))
	for i, r := range recs {
		if r.GetName() == "" || r.GetRolloutNumber() < 1 {
			return fmt.Errorf("put evaluations: want a name and a rollout number, got %q and %d", r.GetName(), r.GetRolloutNumber())
		}
		var err error
		if data[i], err = marshal(r); err != nil {
			return fmt.Errorf("encode evaluations of %s rollout %d: %w", r.GetName(), r.GetRolloutNumber(), err)
		}
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		evals := tx.Bucket(bucketEvals)
		for i, r := range recs {
			kept, err := rolloutKept(tx, r.GetName(), r.GetRolloutNumber())
			if err != nil {
				return err
			}
			if !kept {
				continue
			}
			if err := evals.Put(historyKey(r.GetName(), r.GetRolloutNumber()), data[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put evaluations: %w", err)
	}
	return nil
}

// rolloutKept reports whether rollout number of app name is its current
// rollout or in its history.
func rolloutKept(tx *bolt.Tx, name string, number int64) (bool, error) {
	if tx.Bucket(bucketHistory).Get(historyKey(name, number)) != nil {
		return true, nil
	}
	v := tx.Bucket(bucketRollouts).Get([]byte(name))
	if v == nil {
		return false, nil
	}
	cur := &cutoverv1.Rollout{}
	if err := proto.Unmarshal(v, cur); err != nil {
		return false, fmt.Errorf("decode rollout %s: %w", name, err)
	}
	return cur.GetStatus().GetRolloutNumber() == number, nil
}

// Evaluations returns the evaluation record of rollout number of app
// name; a rollout without one (no gates, or never evaluated) has an empty
// record. Safe for concurrent use.
func (b *Bolt) Evaluations(_ context.Context, name string, number int64) (*cutoverv1.RolloutEvaluations, error) {
	out := &cutoverv1.RolloutEvaluations{}
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEvals).Get(historyKey(name, number))
		if v == nil {
			return nil
		}
		return proto.Unmarshal(v, out)
	})
	if err != nil {
		return nil, fmt.Errorf("evaluations of %s rollout %d: %w", name, number, err)
	}
	out.Name, out.RolloutNumber = name, number
	return out, nil
}
