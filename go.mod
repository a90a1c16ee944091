module github.com/matchd/matchd

go 1.26.8

require (
	github.com/cockroachdb/datadriven v1.0.3
	github.com/shopspring/decimal v1.6.0
	github.com/tidwall/btree v1.8.2
)

require github.com/pmezard/go-difflib v1.0.0 // indirect
