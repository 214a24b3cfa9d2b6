// Package uibrowser tests the LAPI's dashboard in headless Chromium. It
// lives in the tools module so chromedp stays out of the binaries' module.
// It has no code of its own outside tests.
package uibrowser
