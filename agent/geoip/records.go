package geoip

// City and ASN are the records upstream's GeoIPEnrich and GeoIPASNEnrich
// return (the GeoLite2 layout of oschwald/geoip2-golang v1), with the same
// Go field names, so expressions written for upstream such as
// GeoIPEnrich(ip)?.Country.IsoCode or GeoIPASNEnrich(ip).AutonomousSystemNumber
// compile and read the same values here.

// Names are a place's names by language code ("en", "fr", ...).
type Names = map[string]string

// Country is a country of a City record.
type Country struct {
	Names             Names  `maxminddb:"names"`
	IsoCode           string `maxminddb:"iso_code"`
	GeoNameID         uint   `maxminddb:"geoname_id"`
	IsInEuropeanUnion bool   `maxminddb:"is_in_european_union"`
}

// RepresentedCountry is the country a military base or embassy
// represents; Type says which ("military", ...).
type RepresentedCountry struct {
	Names             Names  `maxminddb:"names"`
	IsoCode           string `maxminddb:"iso_code"`
	Type              string `maxminddb:"type"`
	GeoNameID         uint   `maxminddb:"geoname_id"`
	IsInEuropeanUnion bool   `maxminddb:"is_in_european_union"`
}

// City is a GeoLite2-City record.
type City struct {
	City struct {
		Names     Names `maxminddb:"names"`
		GeoNameID uint  `maxminddb:"geoname_id"`
	} `maxminddb:"city"`
	Postal struct {
		Code string `maxminddb:"code"`
	} `maxminddb:"postal"`
	Continent struct {
		Names     Names  `maxminddb:"names"`
		Code      string `maxminddb:"code"`
		GeoNameID uint   `maxminddb:"geoname_id"`
	} `maxminddb:"continent"`
	Subdivisions []struct {
		Names     Names  `maxminddb:"names"`
		IsoCode   string `maxminddb:"iso_code"`
		GeoNameID uint   `maxminddb:"geoname_id"`
	} `maxminddb:"subdivisions"`
	RepresentedCountry RepresentedCountry `maxminddb:"represented_country"`
	Country            Country            `maxminddb:"country"`
	RegisteredCountry  Country            `maxminddb:"registered_country"`
	Location           struct {
		TimeZone       string  `maxminddb:"time_zone"`
		Latitude       float64 `maxminddb:"latitude"`
		Longitude      float64 `maxminddb:"longitude"`
		MetroCode      uint    `maxminddb:"metro_code"`
		AccuracyRadius uint16  `maxminddb:"accuracy_radius"`
	} `maxminddb:"location"`
	Traits struct {
		IsAnonymousProxy    bool `maxminddb:"is_anonymous_proxy"`
		IsAnycast           bool `maxminddb:"is_anycast"`
		IsSatelliteProvider bool `maxminddb:"is_satellite_provider"`
	} `maxminddb:"traits"`
}

// ASN is a GeoLite2-ASN record.
type ASN struct {
	AutonomousSystemOrganization string `maxminddb:"autonomous_system_organization"`
	AutonomousSystemNumber       uint   `maxminddb:"autonomous_system_number"`
}
