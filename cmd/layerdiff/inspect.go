package main

import (
	"errors"
	"os"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/urfave/cli/v2"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "list a GGUF file's metadata and tensors",
		ArgsUsage: "MODEL.gguf",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "machine-readable output (docs/inspect-json.md)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("usage: layerdiff inspect MODEL.gguf [--json]")
			}
			f, err := gguf.Open(c.Args().First())
			if err != nil {
				return err
			}
			defer f.Close()
			r := gguf.Inspect(f)
			if c.Bool("json") {
				return r.WriteJSON(os.Stdout)
			}
			return r.WriteText(os.Stdout)
		},
	}
}
