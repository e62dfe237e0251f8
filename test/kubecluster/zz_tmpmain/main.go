package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/cutover-dev/cutover/test/kubecluster"
)

func main() {
	dir := os.Args[1]
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := kubecluster.Start(ctx, kubecluster.Options{Dir: dir, Log: log, GatewayAPI: os.Getenv("GW") != ""})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if len(os.Args) > 2 {
		d, _ := time.ParseDuration(os.Args[2])
		time.Sleep(d)
	}
	fmt.Println(c.Stop())
}
