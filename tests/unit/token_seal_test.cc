#include "queue/token_seal.h"

#include <cctype>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace slack_proxy {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;

constexpr std::size_t kNonce = 12;
constexpr std::size_t kTag = 16;

const std::string kKeyHex = "00112233445566778899aabbccddeeff0123456789abcdef0f1e2d3c4b5a6978";
const std::string kOtherKeyHex = "ffeeddccbbaa99887766554433221100fedcba98765432100123456789abcdef";
const std::string kToken = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";

std::string flip_byte(std::string blob, std::size_t i) {
  blob[i] = static_cast<char>(blob[i] ^ 0x01);
  return blob;
}

// The message of the invalid_argument from_hex throws, or "" if it threw none.
std::string from_hex_error(const std::string& hex) {
  try {
    TokenSealer::from_hex(hex);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(TokenSeal, RoundTripReturnsThePlaintext) {
  const auto sealer = TokenSealer::from_hex(kKeyHex);

  EXPECT_THAT(sealer.open(sealer.seal(kToken)), Optional(kToken));
}

TEST(TokenSeal, RandomKeyRoundTripsAndIsEphemeral) {
  const auto sealer = TokenSealer::random();

  EXPECT_TRUE(sealer.ephemeral());
  EXPECT_THAT(sealer.open(sealer.seal(kToken)), Optional(kToken));
}

TEST(TokenSeal, KeyFromHexIsNotEphemeral) {
  EXPECT_FALSE(TokenSealer::from_hex(kKeyHex).ephemeral());
}

TEST(TokenSeal, BlobIsNonceCiphertextTag) {
  const auto sealer = TokenSealer::from_hex(kKeyHex);

  EXPECT_EQ(sealer.seal(kToken).size(), kNonce + kToken.size() + kTag);
}

TEST(TokenSeal, EmptyPlaintextRoundTrips) {
  const auto sealer = TokenSealer::from_hex(kKeyHex);
  const std::string blob = sealer.seal("");

  EXPECT_EQ(blob.size(), kNonce + kTag);
  EXPECT_THAT(sealer.open(blob), Optional(std::string()));
}

TEST(TokenSeal, BinaryPlaintextWithNulBytesRoundTrips) {
  const auto sealer = TokenSealer::from_hex(kKeyHex);
  const std::string binary("a\0b\xff\0", 5);

  EXPECT_THAT(sealer.open(sealer.seal(binary)), Optional(binary));
}

// Test Case 14 of the GCM specification (McGrew & Viega): zero key, zero
// nonce, 16 zero bytes. Laid out as nonce | ciphertext | tag, it must open,
// which pins both the cipher and the blob layout a durable queue stores.
TEST(TokenSeal, OpensTheGcmSpecTestVectorInNonceCiphertextTagLayout) {
  const auto sealer = TokenSealer::from_hex(std::string(64, '0'));
  const std::string blob = std::string(kNonce, '\0') +
                           "\xce\xa7\x40\x3d\x4d\x60\x6b\x6e\x07\x4e\xc5\xd3\xba\xf3\x9d\x18"  // ciphertext
                           "\xd0\xd1\xc8\xa7\x99\x99\x6b\xf0\x26\x5b\x98\xb5\xd4\x8a\xb9\x19";  // tag
  ASSERT_EQ(blob.size(), kNonce + 16 + kTag);

  EXPECT_THAT(sealer.open(blob), Optional(std::string(16, '\0')));
}

TEST(TokenSeal, TwoSealsOfTheSameTokenDiffer) {
  const auto sealer = TokenSealer::from_hex(kKeyHex);
  const std::string a = sealer.seal(kToken);
  const std::string b = sealer.seal(kToken);

  EXPECT_NE(a, b);
  EXPECT_NE(a.substr(0, kNonce), b.substr(0, kNonce)) << "each seal must use a fresh nonce";
}

TEST(TokenSeal, BlobDoesNotContainThePlaintext) {
  const auto sealer = TokenSealer::from_hex(kKeyHex);
  const std::string blob = sealer.seal(kToken);

  EXPECT_THAT(blob, Not(HasSubstr(kToken)));
  EXPECT_THAT(blob, Not(HasSubstr("xoxb-")));
}

TEST(TokenSeal, WrongKeyGivesNullopt) {
  const std::string blob = TokenSealer::from_hex(kKeyHex).seal(kToken);

  EXPECT_EQ(TokenSealer::from_hex(kOtherKeyHex).open(blob), std::nullopt);
  EXPECT_EQ(TokenSealer::random().open(blob), std::nullopt);
}

TEST(TokenSeal, TwoRandomKeysCannotOpenEachOthersBlobs) {
  const auto a = TokenSealer::random();
  const auto b = TokenSealer::random();

  EXPECT_EQ(b.open(a.seal(kToken)), std::nullopt);
}

TEST(TokenSeal, HexKeyIsCaseInsensitive) {
  std::string upper = kKeyHex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string blob = TokenSealer::from_hex(kKeyHex).seal(kToken);

  EXPECT_THAT(TokenSealer::from_hex(upper).open(blob), Optional(kToken));
}

TEST(TokenSeal, FlippedNonceByteGivesNullopt) {
  const auto sealer = TokenSealer::from_hex(kKeyHex);
  const std::string blob = sealer.seal(kToken);

  for (std::size_t i = 0; i < kNonce; ++i) {
    EXPECT_EQ(sealer.open(flip_byte(blob, i)), std::nullopt) << "nonce byte " << i;
  }
}

TEST(TokenSeal, FlippedCiphertextByteGivesNullopt) {
  const auto sealer = TokenSealer::from_hex(kKeyHex);
  const std::string blob = sealer.seal(kToken);

  for (std::size_t i = kNonce; i < kNonce + kToken.size(); ++i) {
    EXPECT_EQ(sealer.open(flip_byte(blob, i)), std::nullopt) << "ciphertext byte " << i;
  }
}

TEST(TokenSeal, FlippedTagByteGivesNullopt) {
  const auto sealer = TokenSealer::from_hex(kKeyHex);
  const std::string blob = sealer.seal(kToken);

  for (std::size_t i = blob.size() - kTag; i < blob.size(); ++i) {
    EXPECT_EQ(sealer.open(flip_byte(blob, i)), std::nullopt) << "tag byte " << i;
  }
}

TEST(TokenSeal, TruncatedBlobGivesNullopt) {
  const auto sealer = TokenSealer::from_hex(kKeyHex);
  const std::string blob = sealer.seal(kToken);

  for (std::size_t n = 0; n < blob.size(); ++n) {
    EXPECT_EQ(sealer.open(blob.substr(0, n)), std::nullopt) << "first " << n << " bytes";
  }
}

TEST(TokenSeal, BlobWithAnExtraByteGivesNullopt) {
  const auto sealer = TokenSealer::from_hex(kKeyHex);

  EXPECT_EQ(sealer.open(sealer.seal(kToken) + 'x'), std::nullopt);
}

TEST(TokenSeal, EmptyBlobGivesNullopt) {
  EXPECT_EQ(TokenSealer::from_hex(kKeyHex).open(""), std::nullopt);
}

TEST(TokenSeal, OpenDoesNotThrowOnGarbage) {
  const auto sealer = TokenSealer::from_hex(kKeyHex);
  const std::string garbage(200, '\xAB');

  EXPECT_NO_THROW(EXPECT_EQ(sealer.open(garbage), std::nullopt));
  EXPECT_NO_THROW(EXPECT_EQ(sealer.open(std::string(kNonce + kTag, '\0')), std::nullopt));
}

TEST(TokenSeal, FromHexRejects63Digits) {
  const std::string hex = kKeyHex.substr(0, 63);

  EXPECT_THROW(TokenSealer::from_hex(hex), std::invalid_argument);
}

TEST(TokenSeal, FromHexRejects65Digits) {
  const std::string hex = kKeyHex + "0";

  EXPECT_THROW(TokenSealer::from_hex(hex), std::invalid_argument);
}

TEST(TokenSeal, FromHexRejectsEmpty) {
  EXPECT_THROW(TokenSealer::from_hex(""), std::invalid_argument);
}

TEST(TokenSeal, FromHexRejectsNonHexCharacters) {
  // Each is 64 characters long, so only the character check can refuse it.
  const std::string cases[] = {
      "g" + kKeyHex.substr(1),                // a letter past 'f'
      kKeyHex.substr(0, 63) + "G",            // ...in upper case, at the end
      "0x" + kKeyHex.substr(2),               // a C-style prefix
      kKeyHex.substr(0, 32) + " " + kKeyHex.substr(33),  // whitespace inside
      kKeyHex.substr(0, 10) + std::string(1, '\0') + kKeyHex.substr(11),  // NUL inside
  };
  for (const auto& hex : cases) {
    ASSERT_EQ(hex.size(), 64u);
    EXPECT_THROW(TokenSealer::from_hex(hex), std::invalid_argument) << "case " << &hex - cases;
  }
}

TEST(TokenSeal, FromHexErrorDoesNotContainTheInput) {
  const std::string cases[] = {
      kKeyHex.substr(0, 63),
      kKeyHex + "0",
      "g" + kKeyHex.substr(1),
  };
  for (const auto& hex : cases) {
    const std::string error = from_hex_error(hex);

    ASSERT_FALSE(error.empty()) << "from_hex accepted case " << &hex - cases;
    EXPECT_THAT(error, Not(HasSubstr(hex)));
    // Not even a recognisable piece of the key.
    EXPECT_THAT(error, Not(HasSubstr(kKeyHex.substr(1, 8))));
    EXPECT_THAT(error, Not(HasSubstr(kKeyHex.substr(40, 8))));
  }
}

}  // namespace
}  // namespace slack_proxy
