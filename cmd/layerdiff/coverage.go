package main

import (
	"fmt"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/urfave/cli/v2"
)

// minCoverageFlag is --min-coverage (run, compare and report): a verdict
// whose coverage is below it fails. It is checked as soon as the flags
// are parsed, so a bad value costs no work.
func minCoverageFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  "min-coverage",
		Usage: "fail (exit 1) when fewer than `X` of the reference's nodes were measured: a fraction 0..1 or a percentage (50%); views, nodes without data and filtered-out nodes are not counted",
		Action: func(_ *cli.Context, s string) error {
			if _, err := compare.ParseMinCoverage(s); err != nil {
				return fmt.Errorf("usage: --min-coverage: %w", err)
			}
			return nil
		},
	}
}

// requireCoverage holds rep to --min-coverage when it was given.
func requireCoverage(c *cli.Context, rep *compare.Report) error {
	if !c.IsSet("min-coverage") {
		return nil
	}
	min, err := compare.ParseMinCoverage(c.String("min-coverage"))
	if err != nil {
		return fmt.Errorf("usage: --min-coverage: %w", err)
	}
	rep.RequireCoverage(min)
	return nil
}

// coverageFailure is the exit message of a verdict that fails only for
// its coverage.
func coverageFailure(rep *compare.Report) string {
	cv := rep.CoverageInfo()
	m := float64(cv.Min)
	return fmt.Sprintf("coverage %s is below --min-coverage %s: %d of %d reference nodes measured", cv.Percent(), compare.Percent(m, m > 0, m < 1), cv.Measured, cv.Nodes)
}
