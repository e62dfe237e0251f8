package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// procStart returns a process's start time in clock ticks since boot and
// whether it is still running (not a zombie), read from /proc/<pid>/stat.
func procStart(pid int) (ticks uint64, alive bool, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields we need come after its last ')'.
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, false, fmt.Errorf("stat of %d: malformed", pid)
	}
	fields := strings.Fields(string(data[end+1:]))
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, false, fmt.Errorf("stat of %d: %d fields", pid, len(fields))
	}
	ticks, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("stat of %d: start time: %w", pid, err)
	}
	return ticks, fields[0] != "Z" && fields[0] != "X", nil
}

// sameProcess reports whether pid is still the live process that started at
// ticks.
func sameProcess(pid int, ticks uint64) bool {
	got, alive, err := procStart(pid)
	return err == nil && alive && got == ticks
}

// signalGroup signals the instance's whole process group.
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}
