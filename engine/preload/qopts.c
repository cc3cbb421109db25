/*
 * qopts.c - read one value out of a QEMU option argument, as QEMU would.
 *
 * QemuOpts ("a=b,c=d"): the first bare token is the option's implied key
 * (-name's "guest", -device's "driver"), a later bare token "k" means
 * k=on and "nok" k=off, ",," is a literal comma, and the last of repeated
 * keys wins.  JSON (an argument starting with '{', which libvirt writes
 * for -object and -device) is read with json-c; booleans come back as
 * "on"/"off" and integers in decimal, so callers see one form.
 */
#include "engine/preload/qopts.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

int pk_qc_split(char *buf, size_t len, char *argv[], int max)
{
	int argc = 0;
	size_t i = 0;

	while (i < len && argc < max) {
		argv[argc++] = buf + i;
		while (i < len && buf[i])
			i++;
		i++; /* the NUL */
	}
	return argc;
}

/* Copy s[0..n) into out, turning ",," into ','.  -ENAMETOOLONG if full. */
static int copy_unescaped(const char *s, size_t n, char *out, size_t out_len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == ',' && i + 1 < n && s[i + 1] == ',')
			i++;
		if (o + 1 >= out_len)
			return -ENAMETOOLONG;
		out[o++] = s[i];
	}
	if (out_len)
		out[o] = '\0';
	return 0;
}

/* Length of a value starting at s: up to a ',' that is not ",,". */
static size_t value_len(const char *s)
{
	size_t i = 0;

	while (s[i]) {
		if (s[i] == ',') {
			if (s[i + 1] != ',')
				break;
			i++;
		}
		i++;
	}
	return i;
}

int pk_qc_opt(const char *opts, const char *implied, const char *key,
	      char *out, size_t out_len)
{
	const char *s = opts;
	int found = 0, first = 1;

	while (*s) {
		size_t name_len = strcspn(s, "=,");
		const char *name = s, *val;
		size_t vlen, nlen = name_len;
		int bare = s[name_len] != '=';

		if (bare && first && implied) {
			name = implied;
			nlen = strlen(implied);
			val = s;
			vlen = value_len(s);
		} else if (bare) {
			/* a flag: "k" is k=on, "nok" is k=off (old syntax) */
			val = "on";
			vlen = 2;
			if (name_len > 2 && strncmp(s, "no", 2) == 0 &&
			    strlen(key) == name_len - 2 &&
			    strncmp(s + 2, key, name_len - 2) == 0) {
				name = s + 2;
				nlen = name_len - 2;
				val = "off";
				vlen = 3;
			}
		} else {
			val = s + name_len + 1;
			vlen = value_len(val);
		}
		if (strlen(key) == nlen && strncmp(name, key, nlen) == 0) {
			int rc = copy_unescaped(val, vlen, out, out_len);
			if (rc)
				return rc;
			found = 1; /* keep going: the last one wins */
		}
		s = bare && !(first && implied) ? s + name_len : val + vlen;
		if (*s == ',')
			s++;
		first = 0;
	}
	return found;
}

static int json_value(const char *arg, const char *key, char *out,
		      size_t out_len)
{
	json_object *root = json_tokener_parse(arg), *v;
	const char *text;
	char num[32];
	int rc = 0;

	if (!root)
		return 0;
	if (json_object_is_type(root, json_type_object) &&
	    json_object_object_get_ex(root, key, &v) && v) {
		switch (json_object_get_type(v)) {
		case json_type_string:
			text = json_object_get_string(v);
			break;
		case json_type_boolean:
			text = json_object_get_boolean(v) ? "on" : "off";
			break;
		case json_type_int:
			snprintf(num, sizeof(num), "%lld",
				 (long long)json_object_get_int64(v));
			text = num;
			break;
		default:
			text = NULL;
		}
		if (text) {
			rc = strlen(text) < out_len ? 1 : -ENAMETOOLONG;
			if (rc == 1)
				memcpy(out, text, strlen(text) + 1);
		}
	}
	json_object_put(root);
	return rc;
}

int pk_qc_value(const char *arg, const char *implied, const char *key,
		char *out, size_t out_len)
{
	if (arg[0] == '{') {
		/* JSON has no implied key: -object's is "qom-type",
		 * -device's "driver", -netdev's "type", as in the JSON. */
		return json_value(arg, key, out, out_len);
	}
	return pk_qc_opt(arg, implied, key, out, out_len);
}

int pk_qc_bool(const char *v)
{
	return !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true") ||
	       !strcmp(v, "y");
}

