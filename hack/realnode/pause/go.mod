module startbench.dev/pause

go 1.22
