package e2e

import (
	"io"
	"net/http"
	"strings"
)

func httpPost(endpoint, op, body string) (string, error) {
	url := endpoint
	if !strings.Contains(endpoint, "/berth/") {
		url += "/"
	}
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if op != "" {
		req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113."+op)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
