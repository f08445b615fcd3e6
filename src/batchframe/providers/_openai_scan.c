/* One pass over a block of OpenAI result lines, straight to the columns the decoder reads.
 *
 * The fast path's parser for batchframe.providers.openai_fast (see scan_block there). It
 * walks each line once, validates it as strictly as orjson would, and copies out only the
 * leaves the decoder needs (custom_id, status, first choice, usage, errors) into Arrow-layout
 * buffers. Anything it is not sure of -- a value of an unexpected type, a duplicated or
 * escaped key on the read path, deep nesting, a long number, NaN, invalid UTF-8, a lone
 * surrogate, two documents on a line -- marks the line "slow": Python then decodes that line
 * with orjson and the line decoder, which define the meaning. Being stricter than orjson is
 * always safe; being looser never is.
 *
 * The GIL is released while scanning, so two blocks are scanned on two cores at once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Deeper lines go to the line decoder (orjson itself refuses beyond 1024 levels). */
#define MAX_DEPTH 512
/* Longer integers go to the line decoder: 18 digits always fit an int64. */
#define MAX_DIGITS 18

/* The string leaves, in the order of STRING_NAMES (the fields of openai_fast.Leaves). */
enum {
    S_BODY_OBJECT, S_CONTENT, S_REFUSAL, S_ARGUMENTS, S_FINISH_REASON, S_BODY_ERROR_MESSAGE,
    S_BODY_ERROR_CODE, S_BODY_ERROR_TYPE, S_ERROR_CODE, S_ERROR_MESSAGE, N_STRINGS
};
/* Leaves short enough for 32-bit offsets (pyarrow's string, not large_string). */
static const int SHORT_STRING[N_STRINGS] = {
    [S_BODY_OBJECT] = 1, [S_FINISH_REASON] = 1, [S_BODY_ERROR_CODE] = 1,
    [S_BODY_ERROR_TYPE] = 1, [S_ERROR_CODE] = 1,
};
static const char *STRING_NAMES[N_STRINGS] = {
    "body_object", "content", "refusal", "arguments", "finish_reason",
    "body_error_message", "body_error_code", "body_error_type", "error_code", "error_message",
};

/* The integer leaves, in the order of INTEGER_NAMES (the fields of openai_fast.Leaves). */
enum { I_STATUS, I_PROMPT, I_COMPLETION, I_CACHED, I_REASONING, N_INTEGERS };
static const char *INTEGER_NAMES[N_INTEGERS] = {
    "status", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens",
};

/* The objects on the read path; NONE is any other value (validated, not read). */
typedef enum {
    K_NONE, K_TOP, K_RESPONSE, K_BODY, K_CHOICE, K_MESSAGE, K_TOOL_CALL, K_FUNCTION, K_USAGE,
    K_PROMPT_DETAILS, K_COMPLETION_DETAILS, K_BODY_ERROR, K_ERROR
} Kind;

/* What a known key's value must be, and where it goes. */
typedef enum { A_OBJECT, A_FIRST_OF_LIST, A_STRING, A_INTEGER, A_OUTPUT, A_RESPONSE, A_KEY } Action;

typedef struct {
    Kind kind;
    const char *name;
    Action action;
    int target; /* a Kind for objects and lists, a column for leaves */
} Field;

static const Field FIELDS[] = {
    {K_TOP, "custom_id", A_KEY, 0},
    {K_TOP, "response", A_RESPONSE, K_RESPONSE},
    {K_TOP, "error", A_OBJECT, K_ERROR},
    {K_RESPONSE, "status_code", A_INTEGER, I_STATUS},
    {K_RESPONSE, "body", A_OBJECT, K_BODY},
    {K_BODY, "object", A_STRING, S_BODY_OBJECT},
    {K_BODY, "output", A_OUTPUT, 0},
    {K_BODY, "choices", A_FIRST_OF_LIST, K_CHOICE},
    {K_BODY, "usage", A_OBJECT, K_USAGE},
    {K_BODY, "error", A_OBJECT, K_BODY_ERROR},
    {K_CHOICE, "message", A_OBJECT, K_MESSAGE},
    {K_CHOICE, "finish_reason", A_STRING, S_FINISH_REASON},
    {K_MESSAGE, "content", A_STRING, S_CONTENT},
    {K_MESSAGE, "refusal", A_STRING, S_REFUSAL},
    {K_MESSAGE, "tool_calls", A_FIRST_OF_LIST, K_TOOL_CALL},
    {K_TOOL_CALL, "function", A_OBJECT, K_FUNCTION},
    {K_FUNCTION, "arguments", A_STRING, S_ARGUMENTS},
    {K_USAGE, "prompt_tokens", A_INTEGER, I_PROMPT},
    {K_USAGE, "completion_tokens", A_INTEGER, I_COMPLETION},
    {K_USAGE, "prompt_tokens_details", A_OBJECT, K_PROMPT_DETAILS},
    {K_USAGE, "completion_tokens_details", A_OBJECT, K_COMPLETION_DETAILS},
    {K_PROMPT_DETAILS, "cached_tokens", A_INTEGER, I_CACHED},
    {K_COMPLETION_DETAILS, "reasoning_tokens", A_INTEGER, I_REASONING},
    {K_BODY_ERROR, "message", A_STRING, S_BODY_ERROR_MESSAGE},
    {K_BODY_ERROR, "code", A_STRING, S_BODY_ERROR_CODE},
    {K_BODY_ERROR, "type", A_STRING, S_BODY_ERROR_TYPE},
    {K_ERROR, "code", A_STRING, S_ERROR_CODE},
    {K_ERROR, "message", A_STRING, S_ERROR_MESSAGE},
};
#define N_FIELDS ((int)(sizeof(FIELDS) / sizeof(FIELDS[0])))

/* A string column in Arrow's large_string layout. */
typedef struct {
    char *data;
    size_t size, capacity;
    int64_t *offsets; /* rows + 1 */
    uint8_t *valid;   /* a bitmap */
} Strings;

/* An int64 column with a validity bitmap. */
typedef struct {
    int64_t *values;
    uint8_t *valid;
} Integers;

typedef struct {
    const uint8_t *p;   /* the next byte */
    const uint8_t *end; /* the line's end (its newline, or the block's end) */
    int64_t row;
    Strings strings[N_STRINGS];
    Integers integers[N_INTEGERS];
    Strings custom_id; /* the current line's id, decoded for its key (only data is used) */
    int64_t *key;          /* the request key in custom_id ("r<digits>"), -1 if none */
    uint8_t *has_response; /* a byte per row: "response" is an object */
    uint8_t *has_output;   /* a byte per row: the body has a non-null "output" */
    uint8_t *slow;         /* a byte per row: decode this line with the line decoder */
    int64_t *starts, *ends;
    int out_of_memory;
} Scan;

/* Why a line is handed to the line decoder; only whether, not why, reaches Python. */
#define SLOW (-1)

static inline void set_bit(uint8_t *bits, int64_t i) { bits[i >> 3] |= (uint8_t)(1u << (i & 7)); }

static inline void skip_space(Scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\r')) s->p++;
}

static int reserve(Scan *s, Strings *column, size_t more) {
    if (column->size + more <= column->capacity) return 0;
    size_t capacity = column->capacity ? column->capacity : 4096;
    while (capacity < column->size + more) capacity *= 2;
    char *data = realloc(column->data, capacity);
    if (!data) {
        s->out_of_memory = 1;
        return SLOW;
    }
    column->data = data;
    column->capacity = capacity;
    return 0;
}

static inline int hex_value(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(Scan *s, uint32_t *out) {
    if (s->end - s->p < 4) return SLOW;
    uint32_t value = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_value(s->p[i]);
        if (digit < 0) return SLOW;
        value = (value << 4) | (uint32_t)digit;
    }
    s->p += 4;
    *out = value;
    return 0;
}

/* The length of the well-formed UTF-8 sequence at p (Unicode table 3-7), or 0. */
static inline int utf8_length(const uint8_t *p, const uint8_t *end) {
    uint8_t c = p[0];
    ptrdiff_t left = end - p;
#define CONT(i) (left > (i) && (p[i] & 0xC0) == 0x80)
    if (c >= 0xC2 && c <= 0xDF) return CONT(1) ? 2 : 0;
    if (c == 0xE0) return left > 2 && p[1] >= 0xA0 && p[1] <= 0xBF && CONT(2) ? 3 : 0;
    if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return CONT(1) && CONT(2) ? 3 : 0;
    if (c == 0xED) return left > 2 && p[1] >= 0x80 && p[1] <= 0x9F && CONT(2) ? 3 : 0;
    if (c == 0xF0) return left > 3 && p[1] >= 0x90 && p[1] <= 0xBF && CONT(2) && CONT(3) ? 4 : 0;
    if (c >= 0xF1 && c <= 0xF3) return CONT(1) && CONT(2) && CONT(3) ? 4 : 0;
    if (c == 0xF4) return left > 3 && p[1] >= 0x80 && p[1] <= 0x8F && CONT(2) && CONT(3) ? 4 : 0;
#undef CONT
    return 0;
}

/* Bytes that end a plain run inside a string: '"', '\\', controls and non-ASCII. */
static uint8_t STOP[256];
/* Each field's name length, and each kind's fields as a range of FIELDS (they are grouped). */
static size_t NAME_LENGTH[N_FIELDS];
static int FIRST_FIELD[K_ERROR + 1], END_FIELD[K_ERROR + 1];

static void init_tables(void) {
    for (int c = 0; c < 256; c++) STOP[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
    for (int i = N_FIELDS - 1; i >= 0; i--) {
        NAME_LENGTH[i] = strlen(FIELDS[i].name);
        FIRST_FIELD[FIELDS[i].kind] = i;
        if (!END_FIELD[FIELDS[i].kind]) END_FIELD[FIELDS[i].kind] = i + 1;
    }
}

/* A string at s->p (its opening quote); its text goes to `column` unless that is NULL. */
static int parse_string(Scan *s, Strings *column) {
    s->p++; /* the opening quote */
    for (;;) {
        const uint8_t *run = s->p;
        while (s->p < s->end && !STOP[*s->p]) s->p++;
        if (column && s->p > run) {
            size_t n = (size_t)(s->p - run);
            if (reserve(s, column, n)) return SLOW;
            memcpy(column->data + column->size, run, n);
            column->size += n;
        }
        if (s->p >= s->end) return SLOW; /* unterminated */
        uint8_t c = *s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20) return SLOW; /* a raw control character */
        if (c >= 0x80) {
            int n = utf8_length(s->p, s->end);
            if (!n) return SLOW;
            if (column) {
                if (reserve(s, column, (size_t)n)) return SLOW;
                memcpy(column->data + column->size, s->p, (size_t)n);
                column->size += (size_t)n;
            }
            s->p += n;
            continue;
        }
        /* an escape */
        if (s->end - s->p < 2) return SLOW;
        uint8_t e = s->p[1];
        s->p += 2;
        uint8_t simple = 0;
        switch (e) {
            case '"': simple = '"'; break;
            case '\\': simple = '\\'; break;
            case '/': simple = '/'; break;
            case 'b': simple = '\b'; break;
            case 'f': simple = '\f'; break;
            case 'n': simple = '\n'; break;
            case 'r': simple = '\r'; break;
            case 't': simple = '\t'; break;
            case 'u': break;
            default: return SLOW;
        }
        if (e != 'u') {
            if (column) {
                if (reserve(s, column, 1)) return SLOW;
                column->data[column->size++] = (char)simple;
            }
            continue;
        }
        uint32_t code;
        if (read_hex4(s, &code)) return SLOW;
        if (code >= 0xDC00 && code <= 0xDFFF) return SLOW; /* a lone low surrogate */
        if (code >= 0xD800 && code <= 0xDBFF) {
            uint32_t low;
            if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u') return SLOW;
            s->p += 2;
            if (read_hex4(s, &low) || low < 0xDC00 || low > 0xDFFF) return SLOW;
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        }
        if (column) {
            if (reserve(s, column, 4)) return SLOW;
            char *out = column->data + column->size;
            if (code < 0x80) {
                out[0] = (char)code;
                column->size += 1;
            } else if (code < 0x800) {
                out[0] = (char)(0xC0 | (code >> 6));
                out[1] = (char)(0x80 | (code & 0x3F));
                column->size += 2;
            } else if (code < 0x10000) {
                out[0] = (char)(0xE0 | (code >> 12));
                out[1] = (char)(0x80 | ((code >> 6) & 0x3F));
                out[2] = (char)(0x80 | (code & 0x3F));
                column->size += 3;
            } else {
                out[0] = (char)(0xF0 | (code >> 18));
                out[1] = (char)(0x80 | ((code >> 12) & 0x3F));
                out[2] = (char)(0x80 | ((code >> 6) & 0x3F));
                out[3] = (char)(0x80 | (code & 0x3F));
                column->size += 4;
            }
        }
    }
}

/* A number at s->p. With `value`, it must be an integer of at most MAX_DIGITS digits. */
static int parse_number(Scan *s, int64_t *value) {
    int negative = 0;
    if (s->p < s->end && *s->p == '-') {
        negative = 1;
        s->p++;
    }
    const uint8_t *digits = s->p;
    int64_t magnitude = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        if (s->p - digits < MAX_DIGITS) magnitude = magnitude * 10 + (*s->p - '0');
        s->p++;
    }
    ptrdiff_t n = s->p - digits;
    if (n == 0 || n > MAX_DIGITS || (n > 1 && digits[0] == '0')) return SLOW;
    int fraction = 0;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        const uint8_t *start = s->p;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
        if (s->p == start) return SLOW;
        fraction = 1;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
        const uint8_t *start = s->p;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
        /* A large exponent may overflow a double, which orjson refuses: let it decide. */
        if (s->p == start || s->p - start > 2) return SLOW;
        fraction = 1;
    }
    if (value) {
        if (fraction) return SLOW; /* a float where an integer belongs */
        *value = negative ? -magnitude : magnitude;
    }
    return 0;
}

static int parse_literal(Scan *s, const char *word, size_t length) {
    if ((size_t)(s->end - s->p) < length || memcmp(s->p, word, length) != 0) return SLOW;
    s->p += length;
    return 0;
}

static inline int at_null(Scan *s) {
    return s->p < s->end && *s->p == 'n';
}

/* The key in a custom id of ours, as decode.key_of reads it: r, 1-18 digits, and at most a
 * final newline (Python's "$"); -1 for any other id. */
static int64_t key_of(const char *id, size_t length) {
    if (length && id[length - 1] == '\n') length--;
    if (length < 2 || length > 1 + MAX_DIGITS || id[0] != 'r') return -1;
    int64_t key = 0;
    for (size_t i = 1; i < length; i++) {
        if (id[i] < '0' || id[i] > '9') return -1;
        key = key * 10 + (id[i] - '0');
    }
    return key;
}

static int parse_value(Scan *s, int depth);

/* After an array item or object member: 1 when `close` ends the container, 0 after a comma
 * (another item follows), SLOW for anything else. */
static int close_or_comma(Scan *s, uint8_t close) {
    skip_space(s);
    if (s->p >= s->end) return SLOW;
    if (*s->p == close || *s->p == ',') return *s->p++ == close;
    return SLOW;
}

static int parse_object(Scan *s, Kind kind, int depth);

/* An array whose elements are validated only; with `first`, its first element is read as
 * an object of that kind (or null). */
static int parse_array(Scan *s, Kind first, int depth) {
    if (depth > MAX_DEPTH) return SLOW;
    s->p++; /* [ */
    skip_space(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (int index = 0;; index++) {
        skip_space(s);
        if (index == 0 && first != K_NONE) {
            if (at_null(s)) {
                if (parse_literal(s, "null", 4)) return SLOW;
            } else if (s->p < s->end && *s->p == '{') {
                if (parse_object(s, first, depth + 1)) return SLOW;
            } else {
                return SLOW;
            }
        } else if (parse_value(s, depth + 1)) {
            return SLOW;
        }
        int closed = close_or_comma(s, ']');
        if (closed) return closed == 1 ? 0 : SLOW;
    }
}

/* Any JSON value off the read path: validated, not read. */
static int parse_value(Scan *s, int depth) {
    if (s->p >= s->end) return SLOW;
    switch (*s->p) {
        case '{': return parse_object(s, K_NONE, depth);
        case '[': return parse_array(s, K_NONE, depth);
        case '"': return parse_string(s, NULL);
        case 't': return parse_literal(s, "true", 4);
        case 'f': return parse_literal(s, "false", 5);
        case 'n': return parse_literal(s, "null", 4);
        default:
            if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) return parse_number(s, NULL);
            return SLOW;
    }
}

/* The value of a known key. */
static int parse_field(Scan *s, const Field *field, int depth) {
    if (at_null(s)) return parse_literal(s, "null", 4); /* null reads as absent */
    uint8_t c = s->p < s->end ? *s->p : 0;
    switch (field->action) {
        case A_RESPONSE:
            if (c != '{') return SLOW;
            s->has_response[s->row] = 1;
            return parse_object(s, (Kind)field->target, depth + 1);
        case A_OBJECT:
            if (c != '{') return SLOW;
            return parse_object(s, (Kind)field->target, depth + 1);
        case A_FIRST_OF_LIST:
            if (c != '[') return SLOW;
            return parse_array(s, (Kind)field->target, depth + 1);
        case A_OUTPUT:
            if (c != '[') return SLOW;
            s->has_output[s->row] = 1;
            return parse_array(s, K_NONE, depth + 1);
        case A_STRING: {
            if (c != '"') return SLOW;
            Strings *column = &s->strings[field->target];
            if (parse_string(s, column)) return SLOW;
            set_bit(column->valid, s->row);
            return 0;
        }
        case A_KEY:
            if (c != '"') return SLOW;
            s->custom_id.size = 0;
            if (parse_string(s, &s->custom_id)) return SLOW;
            s->key[s->row] = key_of(s->custom_id.data, s->custom_id.size);
            return 0;
        case A_INTEGER: {
            int64_t value;
            if (parse_number(s, &value)) return SLOW;
            /* true, false and strings are not numbers: parse_number refused them above */
            s->integers[field->target].values[s->row] = value;
            set_bit(s->integers[field->target].valid, s->row);
            return 0;
        }
    }
    return SLOW;
}

static int parse_object(Scan *s, Kind kind, int depth) {
    if (depth > MAX_DEPTH) return SLOW;
    uint64_t seen = 0; /* the known keys met in this object, by their index in FIELDS */
    s->p++;            /* { */
    skip_space(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        skip_space(s);
        if (s->p >= s->end || *s->p != '"') return SLOW;
        const uint8_t *name = s->p + 1;
        if (parse_string(s, NULL)) return SLOW;
        size_t length = (size_t)(s->p - 1 - name);
        const Field *field = NULL;
        if (kind != K_NONE) {
            /* An escaped key might spell one of ours: only orjson can say. */
            if (memchr(name, '\\', length)) return SLOW;
            for (int i = FIRST_FIELD[kind]; i < END_FIELD[kind]; i++) {
                if (NAME_LENGTH[i] == length &&
                    memcmp(FIELDS[i].name, name, length) == 0) {
                    if (seen & (1ull << i)) return SLOW; /* a duplicated key: orjson keeps the last */
                    seen |= 1ull << i;
                    field = &FIELDS[i];
                    break;
                }
            }
        }
        skip_space(s);
        if (s->p >= s->end || *s->p != ':') return SLOW;
        s->p++;
        skip_space(s);
        if (field ? parse_field(s, field, depth) : parse_value(s, depth + 1)) return SLOW;
        int closed = close_or_comma(s, '}');
        if (closed) return closed == 1 ? 0 : SLOW;
    }
}

/* Python's bytes.strip() whitespace: a line of only these is skipped, as iter_lines does. */
static int is_blank(const uint8_t *p, const uint8_t *end) {
    for (; p < end; p++)
        if (!(*p == ' ' || *p == '\t' || *p == '\r' || *p == '\x0b' || *p == '\x0c')) return 0;
    return 1;
}

static int parse_line(Scan *s) {
    skip_space(s);
    if (s->p >= s->end || *s->p != '{') return SLOW;
    if (parse_object(s, K_TOP, 1)) return SLOW;
    skip_space(s);
    return s->p == s->end ? 0 : SLOW;
}

static void free_scan(Scan *s) {
    for (int i = 0; i < N_STRINGS; i++) {
        free(s->strings[i].data);
        free(s->strings[i].offsets);
        free(s->strings[i].valid);
    }
    for (int i = 0; i < N_INTEGERS; i++) {
        free(s->integers[i].values);
        free(s->integers[i].valid);
    }
    free(s->custom_id.data);
    free(s->key);
    free(s->has_response);
    free(s->has_output);
    free(s->slow);
    free(s->starts);
    free(s->ends);
}

static int allocate(Scan *s, int64_t rows) {
    size_t bits = (size_t)(rows + 7) / 8 + 1;
    for (int i = 0; i < N_STRINGS; i++) {
        s->strings[i].offsets = calloc((size_t)rows + 1, sizeof(int64_t));
        s->strings[i].valid = calloc(bits, 1);
        if (!s->strings[i].offsets || !s->strings[i].valid) return -1;
    }
    for (int i = 0; i < N_INTEGERS; i++) {
        s->integers[i].values = calloc((size_t)rows + 1, sizeof(int64_t));
        s->integers[i].valid = calloc(bits, 1);
        if (!s->integers[i].values || !s->integers[i].valid) return -1;
    }
    s->key = malloc(((size_t)rows + 1) * sizeof(int64_t));
    if (!s->key) return -1;
    for (int64_t i = 0; i <= rows; i++) s->key[i] = -1;
    s->has_response = calloc((size_t)rows + 1, 1);
    s->has_output = calloc((size_t)rows + 1, 1);
    s->slow = calloc((size_t)rows + 1, 1);
    s->starts = calloc((size_t)rows + 1, sizeof(int64_t));
    s->ends = calloc((size_t)rows + 1, sizeof(int64_t));
    if (!s->has_response || !s->has_output || !s->slow || !s->starts || !s->ends) return -1;
    return 0;
}

/* Every non-blank line of data[0:size] becomes a row. */
static void scan_lines(Scan *s, const uint8_t *data, size_t size) {
    const uint8_t *line = data, *stop = data + size;
    while (line < stop) {
        const uint8_t *newline = memchr(line, '\n', (size_t)(stop - line));
        const uint8_t *end = newline ? newline : stop;
        if (!is_blank(line, end)) {
            int64_t row = s->row;
            s->starts[row] = line - data;
            s->ends[row] = (newline ? newline + 1 : stop) - data; /* with its newline */
            s->p = line;
            s->end = end;
            if (parse_line(s)) s->slow[row] = 1;
            for (int i = 0; i < N_STRINGS; i++) s->strings[i].offsets[row + 1] = (int64_t)s->strings[i].size;
            s->row++;
        }
        line = end + 1;
    }
}

static PyObject *bytes_of(const void *data, size_t size) {
    return PyBytes_FromStringAndSize(size ? (const char *)data : "", (Py_ssize_t)size);
}

/* Put `value` (a new reference) into `dict` under `key`; false on failure. */
static int put(PyObject *dict, const char *key, PyObject *value) {
    if (!value) return 0;
    int failed = PyDict_SetItemString(dict, key, value);
    Py_DECREF(value);
    return failed == 0;
}

PyDoc_STRVAR(scan_doc,
    "scan(block) -> dict\n\n"
    "Scan the result lines in `block` (a bytes-like object). Returns the row count, the\n"
    "buffers of each string leaf (offsets, data, validity bitmap, offset width: 4 for the\n"
    "short leaves, else 8) and integer leaf (int64 values, validity bitmap), each row's key\n"
    "(int64, -1 for an id we never sent), a byte per row for has_response, has_output and\n"
    "slow, and each line's start and end (after its newline) as int64.");

static PyObject *scan(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *data = view.buf;
    size_t size = (size_t)view.len;

    Scan s;
    memset(&s, 0, sizeof s);
    int64_t lines = 1;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    for (const uint8_t *p = data, *stop = data + size; (p = memchr(p, '\n', (size_t)(stop - p))); p++)
        lines++;
    failed = allocate(&s, lines);
    if (!failed) {
        scan_lines(&s, data, size);
        failed = s.out_of_memory;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (failed) {
        free_scan(&s);
        return PyErr_NoMemory();
    }

    int64_t rows = s.row;
    size_t bits = (size_t)(rows + 7) / 8;
    PyObject *result = PyDict_New(), *strings = PyDict_New(), *integers = PyDict_New();
    int ok = result && strings && integers;
    for (int i = 0; ok && i < N_STRINGS; i++) {
        Strings *c = &s.strings[i];
        int width = 8;
        if (SHORT_STRING[i] && c->size <= INT32_MAX) { /* narrowed in place */
            int32_t *narrow = (int32_t *)c->offsets;
            for (int64_t r = 0; r <= rows; r++) narrow[r] = (int32_t)c->offsets[r];
            width = 4;
        }
        ok = put(strings, STRING_NAMES[i],
                 Py_BuildValue("(NNNi)", bytes_of(c->offsets, ((size_t)rows + 1) * (size_t)width),
                               bytes_of(c->data, c->size), bytes_of(c->valid, bits), width));
    }
    for (int i = 0; ok && i < N_INTEGERS; i++) {
        Integers *c = &s.integers[i];
        ok = put(integers, INTEGER_NAMES[i],
                 Py_BuildValue("(NN)", bytes_of(c->values, (size_t)rows * sizeof(int64_t)),
                               bytes_of(c->valid, bits)));
    }
    ok = ok && put(result, "rows", PyLong_FromLongLong(rows));
    ok = ok && PyDict_SetItemString(result, "strings", strings) == 0;
    ok = ok && PyDict_SetItemString(result, "integers", integers) == 0;
    ok = ok && put(result, "key", bytes_of(s.key, (size_t)rows * sizeof(int64_t)));
    ok = ok && put(result, "has_response", bytes_of(s.has_response, (size_t)rows));
    ok = ok && put(result, "has_output", bytes_of(s.has_output, (size_t)rows));
    ok = ok && put(result, "slow", bytes_of(s.slow, (size_t)rows));
    ok = ok && put(result, "starts", bytes_of(s.starts, (size_t)rows * sizeof(int64_t)));
    ok = ok && put(result, "ends", bytes_of(s.ends, (size_t)rows * sizeof(int64_t)));
    free_scan(&s);
    Py_XDECREF(strings);
    Py_XDECREF(integers);
    if (!ok) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

static PyMethodDef METHODS[] = {
    {"scan", scan, METH_O, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_openai_scan",
    "A one-pass scanner of OpenAI batch result lines (see openai_fast.py).", -1, METHODS,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__openai_scan(void) {
    init_tables();
    return PyModule_Create(&MODULE);
}
