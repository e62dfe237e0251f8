// Package window decides whether a deployment window is open at an instant
// and when it next opens. Spans are wall-clock times in the window's time
// zone, built day by day with time.Date, so "Mon-Fri 16:00-09:30
// America/New_York" keeps its local hours across daylight-saving changes
// (a span starting in a skipped hour starts at the first instant after it).
package window

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cutoverv1 "github.com/cutover-dev/cutover/internal/gen/cutover/v1"
)

// horizon bounds how far ahead NextOpen looks.
const horizon = 400 * 24 * time.Hour

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// span is a compiled WindowSpan.
type span struct {
	days       [7]bool
	start, end clock
}

// clock is a local time of day.
type clock struct{ h, m int }

// period is a half-open interval [from, to).
type period struct {
	from, to time.Time
	reason   string
}

// Window is a compiled DeploymentWindow.
type Window struct {
	loc      *time.Location
	spans    []span
	freezes  []period
	holidays map[string]bool // YYYY-MM-DD in loc
}

// FieldError is one problem of a window spec, at a path below the window.
type FieldError struct{ Path, Detail string }

func (e FieldError) Error() string { return e.Path + ": " + e.Detail }

// Compile checks a window spec and prepares it. Errors are FieldErrors
// joined with errors.Join, paths relative to the window ("allow[0].start").
func Compile(w *cutoverv1.DeploymentWindow) (*Window, error) {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Detail: fmt.Sprintf(format, args...)})
	}
	out := &Window{loc: time.UTC, holidays: map[string]bool{}}
	if tz := w.GetTimeZone(); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil || strings.EqualFold(tz, "local") {
			add("timeZone", "unknown time zone %q (an IANA name such as America/New_York)", tz)
		} else {
			out.loc = loc
		}
	}
	for i, s := range w.GetAllow() {
		p := fmt.Sprintf("allow[%d]", i)
		var sp span
		if len(s.GetDays()) == 0 {
			sp.days = [7]bool{true, true, true, true, true, true, true}
		}
		for j, d := range s.GetDays() {
			wd, ok := dayNames[strings.ToLower(d)]
			if !ok {
				add(fmt.Sprintf("%s.days[%d]", p, j), "must be Mon, Tue, Wed, Thu, Fri, Sat or Sun, got %q", d)
				continue
			}
			sp.days[wd] = true
		}
		var err error
		if sp.start, err = parseClock(s.GetStart()); err != nil {
			add(p+".start", "%v", err)
		}
		if sp.end, err = parseClock(s.GetEnd()); err != nil {
			add(p+".end", "%v", err)
		}
		out.spans = append(out.spans, sp)
	}
	for i, f := range w.GetFreezes() {
		p := fmt.Sprintf("freezes[%d]", i)
		from, err1 := parseInstant(f.GetStart(), out.loc)
		if err1 != nil {
			add(p+".start", "%v", err1)
		}
		to, err2 := parseInstant(f.GetEnd(), out.loc)
		if err2 != nil {
			add(p+".end", "%v", err2)
		}
		if err1 == nil && err2 == nil && !to.After(from) {
			add(p+".end", "must be after start %s", f.GetStart())
		}
		out.freezes = append(out.freezes, period{from: from, to: to, reason: f.GetReason()})
	}
	for i, h := range w.GetHolidays() {
		d, err := time.ParseInLocation(time.DateOnly, h, out.loc)
		if err != nil {
			add(fmt.Sprintf("holidays[%d]", i), "must be a date YYYY-MM-DD, got %q", h)
			continue
		}
		out.holidays[d.Format(time.DateOnly)] = true
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func parseClock(s string) (clock, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return clock{}, fmt.Errorf("must be a local time HH:MM, got %q", s)
	}
	return clock{t.Hour(), t.Minute()}, nil
}

func parseInstant(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return d, nil
	}
	return time.Time{}, fmt.Errorf("must be RFC 3339 (2026-12-31T17:00:00-05:00) or a date YYYY-MM-DD, got %q", s)
}

// at is the instant of a local date and clock; time.Date moves a time
// that does not exist on that day (a spring-forward gap) past the gap.
func (w *Window) at(y int, mo time.Month, d int, c clock) time.Time {
	return time.Date(y, mo, d, c.h, c.m, 0, 0, w.loc)
}

// spansAround lists the allowed intervals that start on the local days
// from day-1 to day+1 of t.
func (w *Window) spansAround(t time.Time) []period {
	var out []period
	lt := t.In(w.loc)
	for off := -1; off <= 1; off++ {
		day := time.Date(lt.Year(), lt.Month(), lt.Day()+off, 12, 0, 0, 0, w.loc)
		for _, s := range w.spans {
			if !s.days[day.Weekday()] {
				continue
			}
			from := w.at(day.Year(), day.Month(), day.Day(), s.start)
			endDay := day
			if !(s.end.h > s.start.h || (s.end.h == s.start.h && s.end.m > s.start.m)) {
				endDay = time.Date(day.Year(), day.Month(), day.Day()+1, 12, 0, 0, 0, w.loc)
			}
			to := w.at(endDay.Year(), endDay.Month(), endDay.Day(), s.end)
			out = append(out, period{from: from, to: to})
		}
	}
	return out
}

// Open reports whether the window is open at t.
func (w *Window) Open(t time.Time) bool {
	_, ok := w.Closed(t)
	return !ok
}

// Closed says why the window is closed at t ("" and false when open).
func (w *Window) Closed(t time.Time) (string, bool) {
	if w == nil {
		return "", false
	}
	for _, f := range w.freezes {
		if !t.Before(f.from) && t.Before(f.to) {
			why := "freeze"
			if f.reason != "" {
				why += " (" + f.reason + ")"
			}
			return why, true
		}
	}
	if day := t.In(w.loc).Format(time.DateOnly); w.holidays[day] {
		return "holiday " + day, true
	}
	if len(w.spans) == 0 {
		return "", false
	}
	for _, p := range w.spansAround(t) {
		if !t.Before(p.from) && t.Before(p.to) {
			return "", false
		}
	}
	return "outside the allowed hours", true
}

// NextOpen is the first instant at or after t when the window is open;
// false when it stays closed for longer than the horizon (400 days).
// Openness changes only where a span starts, a freeze ends or a day
// begins, so those instants are the candidates.
func (w *Window) NextOpen(t time.Time) (time.Time, bool) {
	if w.Open(t) {
		return t, true
	}
	end := t.Add(horizon)
	for day := t; day.Before(end); day = day.Add(24 * time.Hour) {
		var cands []time.Time
		for _, p := range w.spansAround(day) {
			cands = append(cands, p.from)
		}
		lt := day.In(w.loc)
		for off := 0; off <= 1; off++ {
			cands = append(cands, time.Date(lt.Year(), lt.Month(), lt.Day()+off, 0, 0, 0, 0, w.loc))
		}
		for _, f := range w.freezes {
			cands = append(cands, f.to)
		}
		slices.SortFunc(cands, func(a, b time.Time) int { return a.Compare(b) })
		for _, c := range cands {
			if c.Before(t) || c.After(day.Add(48*time.Hour)) {
				continue
			}
			if w.Open(c) {
				return c, true
			}
		}
	}
	return time.Time{}, false
}

// Location is the window's time zone.
func (w *Window) Location() *time.Location { return w.loc }
