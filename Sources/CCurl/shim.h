#pragma once
#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic and do not import into Swift: one typed
// wrapper per argument type.

typedef size_t (*robit_curl_data_callback)(char *ptr, size_t size, size_t nmemb, void *userdata);

static inline CURLcode robit_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode robit_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode robit_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode robit_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode robit_curl_setopt_size(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode robit_curl_setopt_data_callback(CURL *handle, CURLoption option, robit_curl_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode robit_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

/// The result code of a finished transfer from a CURLMSG_DONE message.
static inline CURLcode robit_curl_msg_result(CURLMsg *msg) {
    return msg->data.result;
}
