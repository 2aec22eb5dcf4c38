// Generates tlog_tiles.json: cd to an empty directory, copy this file as main.go, then
//   go mod init tlogvec && go get golang.org/x/mod@v0.22.0 && go run . > tlog_tiles.json
// Vectors from golang.org/x/mod/sumdb/tlog (the C2SP tlog-tiles reference) for relaygate's tiles.py.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/tlog"
)

type kase struct {
	Size        int64               `json:"size"`
	Root        string              `json:"root"`
	Inclusion   []map[string]any    `json:"inclusion"`
	Consistency []map[string]any    `json:"consistency"`
	Tiles       map[string]string   `json:"tiles"`
}

func hx(hs []tlog.Hash) []string {
	out := []string{}
	for _, h := range hs {
		out = append(out, hex.EncodeToString(h[:]))
	}
	return out
}

func main() {
	var stored []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	sizes := []int64{1, 2, 7, 256, 257, 1000, 65536, 65537, 70001}
	var cases []kase
	var n int64
	for _, size := range sizes {
		for ; n < size; n++ {
			hs, err := tlog.StoredHashes(n, []byte(fmt.Sprintf("go leaf %d", n)), r)
			if err != nil {
				panic(err)
			}
			stored = append(stored, hs...)
		}
		root, err := tlog.TreeHash(size, r)
		if err != nil {
			panic(err)
		}
		k := kase{Size: size, Root: hex.EncodeToString(root[:]), Tiles: map[string]string{}}
		for _, i := range []int64{0, size / 2, size - 1} {
			p, err := tlog.ProveRecord(size, i, r)
			if err != nil {
				panic(err)
			}
			k.Inclusion = append(k.Inclusion, map[string]any{"index": i, "hashes": hx(p)})
		}
		for _, m := range []int64{1, size / 3, size - 1} {
			if m < 1 || m >= size {
				continue
			}
			p, err := tlog.ProveTree(size, m, r)
			if err != nil {
				panic(err)
			}
			k.Consistency = append(k.Consistency, map[string]any{"first": m, "hashes": hx(p)})
		}
		for _, t := range tlog.NewTiles(8, 0, size) {
			data, err := tlog.ReadTileData(t, r)
			if err != nil {
				panic(err)
			}
			d := sha256.Sum256(data)
			k.Tiles[fmt.Sprintf("%d/%d/%d", t.L, t.N, t.W)] = hex.EncodeToString(d[:])
		}
		cases = append(cases, k)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	enc.Encode(map[string]any{
		"source": "golang.org/x/mod/sumdb/tlog v0.22.0 (StoredHashes, TreeHash, ProveRecord, ProveTree, NewTiles(8, 0, size), ReadTileData)",
		"record": "go leaf %d", "height": 8, "cases": cases,
	})
}
