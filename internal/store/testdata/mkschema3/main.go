// Command mkschema3 writes schema3.db, a store file of schema 3 (buckets
// meta, rollouts, clusters, history and audit; no evaluation records)
// holding rollout 2 of "web" (v2, healthy), rollout 1 (v1) in its history,
// one cluster "eu-1" and the audit records of both rollouts, chained,
// written with the store code of that release. It was run once, from the
// repository root, at the commit before schema 4:
//
//	go run ./internal/store/testdata/mkschema3 internal/store/testdata/schema3.db
//
// and its output committed; TestOpenUpgradesSchema3 opens a copy.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
	"github.com/cutover-dev/cutover/internal/store"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkschema3 FILE")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func web(revision string, number int64, at time.Time) *cutoverv1.Rollout {
	ts := timestamppb.New(at)
	return &cutoverv1.Rollout{
		Name: "web",
		Spec: &cutoverv1.RolloutSpec{
			Revision: &cutoverv1.Revision{Name: revision, Command: "/bin/web", Instances: 1, ReadinessPath: "/healthz", ReadyTimeout: "30s"},
			Endpoint: &cutoverv1.Endpoint{Listen: "127.0.0.1:8080"},
			Targets:  &cutoverv1.Targets{Waves: []*cutoverv1.Wave{{Name: "wave-1", Clusters: []string{"eu-1"}}}},
			Strategy: &cutoverv1.Strategy{Strategy: &cutoverv1.Strategy_Canary{Canary: &cutoverv1.CanaryStrategy{
				Steps: []*cutoverv1.CanaryStep{{Step: &cutoverv1.CanaryStep_SetWeight{SetWeight: 50}}},
			}}},
			Gates: []*cutoverv1.Gate{{Name: "errors", Metric: "errorRate", Condition: "<= 0.01", Window: "1s", MinSamples: 100, FailureLimit: 1, Severity: "critical"}},
		},
		Status: &cutoverv1.RolloutStatus{
			Phase:         cutoverv1.RolloutPhase_ROLLOUT_PHASE_HEALTHY,
			RolloutNumber: number,
			StartTime:     ts,
			EndTime:       ts,
			Clusters: []*cutoverv1.ClusterProgress{{
				Cluster: "eu-1", Phase: cutoverv1.ClusterPhase_CLUSTER_PHASE_PROMOTED, CanaryWeight: 100,
				DesiredGeneration: number, ObservedGeneration: number, Converged: true,
			}},
		},
		CreateTime: ts,
		UpdateTime: ts,
		AppliedBy:  "alice",
	}
}

func applied(revision string, at time.Time) *cutoverv1.AuditRecord {
	return &cutoverv1.AuditRecord{Time: timestamppb.New(at), Actor: "alice", Action: "rollout.apply",
		Target: "rollout/web", App: "web", After: "progressing " + revision + " wave 1 step 1"}
}

func write(path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists; remove it first", path)
	}
	b, err := store.Open(path)
	if err != nil {
		return err
	}
	defer b.Close()
	ctx := context.Background()
	at := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := b.PutRollout(ctx, web("v1", 1, at), applied("v1", at)); err != nil {
		return err
	}
	if err := b.ReplaceRollout(ctx, web("v2", 2, at.Add(time.Hour)), web("v1", 1, at), 10, applied("v2", at.Add(time.Hour))); err != nil {
		return err
	}
	return b.PutCluster(ctx, &cutoverv1.Cluster{Name: "eu-1", Region: "eu-west", Runtime: "local"})
}
