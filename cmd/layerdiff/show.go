package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/show"
	"github.com/urfave/cli/v2"
)

const showUsage = "usage: layerdiff show DUMP NODE | FILE.npy | MODEL.gguf TENSOR --row R [--token N] [--first K] [--format text|json]"

func showCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "print one tensor's first values and statistics, whole and per token (docs/show.md)",
		ArgsUsage: "DUMP NODE | FILE.npy | MODEL.gguf TENSOR --row R",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "token", Value: -1, Usage: "only token `N`'s slice (0-based)"},
			&cli.IntFlag{Name: "first", Value: show.DefaultFirst, Usage: "show the first `K` values"},
			&cli.IntFlag{Name: "row", Value: -1, Usage: "GGUF: the row `R` of the weight to dequantize"},
			&cli.StringFlag{Name: "format", Value: "text", Usage: "`text` or json (docs/show.md)"},
		},
		Action: func(c *cli.Context) error {
			format := c.String("format")
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: want text or json", format)
			}
			if c.Int("first") < 1 {
				return fmt.Errorf("--first %d: want at least 1", c.Int("first"))
			}
			o := show.Options{Token: c.Int("token"), First: c.Int("first"), Row: c.Int("row")}
			if c.IsSet("token") && o.Token < 0 {
				return fmt.Errorf("--token %d: want a token index >= 0", o.Token)
			}
			args := c.Args().Slice()
			var r *show.Result
			var err error
			switch {
			case len(args) == 1 && strings.HasSuffix(args[0], ".npy"):
				if c.IsSet("row") {
					return errors.New("--row is for a GGUF weight; " + showUsage)
				}
				r, err = show.NPYFile(args[0], o)
			case len(args) == 2 && strings.HasSuffix(args[0], ".gguf"):
				if !c.IsSet("row") {
					return fmt.Errorf("%s %s: a GGUF weight needs --row R; %s", args[0], args[1], showUsage)
				}
				if c.IsSet("token") {
					return errors.New("--token is for activations, not a GGUF weight")
				}
				r, err = show.GGUFRow(args[0], args[1], o)
			case len(args) == 2:
				if c.IsSet("row") {
					return errors.New("--row is for a GGUF weight; " + showUsage)
				}
				r, err = show.Node(args[0], args[1], o)
			default:
				return errors.New(showUsage)
			}
			if err != nil {
				return err
			}
			if format == "json" {
				return r.WriteJSON(os.Stdout)
			}
			return r.WriteText(os.Stdout)
		},
	}
}
