"""Lexicon of the generated demo corpus: nouns, adjectives, verbs, names and a phrasebook.

Compact tables, one entry per line, fields separated by "|". Read by data_prep/demo_corpus.py.
"""

from __future__ import annotations

# German singular | gender (m* = weak masculine: den/dem Jungen) | German plural | English | English
# plural. Each block is a noun category used by the templates.
NOUNS = {
    "person": """
Mann|m|Männer|man|men
Frau|f|Frauen|woman|women
Kind|n|Kinder|child|children
Junge|m*|Jungen|boy|boys
Mädchen|n|Mädchen|girl|girls
Lehrer|m|Lehrer|teacher|teachers
Lehrerin|f|Lehrerinnen|teacher|teachers
Arzt|m|Ärzte|doctor|doctors
Ärztin|f|Ärztinnen|doctor|doctors
Student|m*|Studenten|student|students
Studentin|f|Studentinnen|student|students
Freund|m|Freunde|friend|friends
Freundin|f|Freundinnen|friend|friends
Bruder|m|Brüder|brother|brothers
Schwester|f|Schwestern|sister|sisters
Vater|m|Väter|father|fathers
Mutter|f|Mütter|mother|mothers
Sohn|m|Söhne|son|sons
Tochter|f|Töchter|daughter|daughters
Onkel|m|Onkel|uncle|uncles
Tante|f|Tanten|aunt|aunts
Großvater|m|Großväter|grandfather|grandfathers
Großmutter|f|Großmütter|grandmother|grandmothers
Nachbar|m*|Nachbarn|neighbor|neighbors
Nachbarin|f|Nachbarinnen|neighbor|neighbors
Koch|m|Köche|cook|cooks
Bäcker|m|Bäcker|baker|bakers
Verkäufer|m|Verkäufer|salesman|salesmen
Verkäuferin|f|Verkäuferinnen|saleswoman|saleswomen
Polizist|m*|Polizisten|police officer|police officers
Kellner|m|Kellner|waiter|waiters
Kellnerin|f|Kellnerinnen|waitress|waitresses
Fahrer|m|Fahrer|driver|drivers
Bauer|m*|Bauern|farmer|farmers
Künstler|m|Künstler|artist|artists
Sänger|m|Sänger|singer|singers
Sängerin|f|Sängerinnen|singer|singers
Tänzerin|f|Tänzerinnen|dancer|dancers
Schüler|m|Schüler|pupil|pupils
Schülerin|f|Schülerinnen|pupil|pupils
Baby|n|Babys|baby|babies
Kollege|m*|Kollegen|colleague|colleagues
Kollegin|f|Kolleginnen|colleague|colleagues
Chef|m|Chefs|boss|bosses
Gast|m|Gäste|guest|guests
Tourist|m*|Touristen|tourist|tourists
Musiker|m|Musiker|musician|musicians
Ingenieur|m|Ingenieure|engineer|engineers
Pilot|m*|Piloten|pilot|pilots
Prinz|m*|Prinzen|prince|princes
Prinzessin|f|Prinzessinnen|princess|princesses
König|m|Könige|king|kings
Königin|f|Königinnen|queen|queens
""",
    "animal": """
Hund|m|Hunde|dog|dogs
Katze|f|Katzen|cat|cats
Pferd|n|Pferde|horse|horses
Vogel|m|Vögel|bird|birds
Fisch|m|Fische|fish|fish
Kuh|f|Kühe|cow|cows
Schwein|n|Schweine|pig|pigs
Schaf|n|Schafe|sheep|sheep
Ziege|f|Ziegen|goat|goats
Maus|f|Mäuse|mouse|mice
Kaninchen|n|Kaninchen|rabbit|rabbits
Hase|m*|Hasen|hare|hares
Bär|m*|Bären|bear|bears
Löwe|m*|Löwen|lion|lions
Tiger|m|Tiger|tiger|tigers
Elefant|m*|Elefanten|elephant|elephants
Affe|m*|Affen|monkey|monkeys
Fuchs|m|Füchse|fox|foxes
Wolf|m|Wölfe|wolf|wolves
Ente|f|Enten|duck|ducks
Huhn|n|Hühner|chicken|chickens
Gans|f|Gänse|goose|geese
Frosch|m|Frösche|frog|frogs
Schlange|f|Schlangen|snake|snakes
Eule|f|Eulen|owl|owls
Biene|f|Bienen|bee|bees
Schmetterling|m|Schmetterlinge|butterfly|butterflies
Spinne|f|Spinnen|spider|spiders
Giraffe|f|Giraffen|giraffe|giraffes
Zebra|n|Zebras|zebra|zebras
Esel|m|Esel|donkey|donkeys
Igel|m|Igel|hedgehog|hedgehogs
Eichhörnchen|n|Eichhörnchen|squirrel|squirrels
Delfin|m|Delfine|dolphin|dolphins
Pinguin|m|Pinguine|penguin|penguins
Krokodil|n|Krokodile|crocodile|crocodiles
Hamster|m|Hamster|hamster|hamsters
Kamel|n|Kamele|camel|camels
""",
    "food": """
Apfel|m|Äpfel|apple|apples
Banane|f|Bananen|banana|bananas
Orange|f|Orangen|orange|oranges
Birne|f|Birnen|pear|pears
Tomate|f|Tomaten|tomato|tomatoes
Kartoffel|f|Kartoffeln|potato|potatoes
Karotte|f|Karotten|carrot|carrots
Ei|n|Eier|egg|eggs
Kuchen|m|Kuchen|cake|cakes
Keks|m|Kekse|cookie|cookies
Brötchen|n|Brötchen|bread roll|bread rolls
Sandwich|n|Sandwiches|sandwich|sandwiches
Pizza|f|Pizzas|pizza|pizzas
Suppe|f|Suppen|soup|soups
Salat|m|Salate|salad|salads
Wurst|f|Würste|sausage|sausages
Zitrone|f|Zitronen|lemon|lemons
Erdbeere|f|Erdbeeren|strawberry|strawberries
Kirsche|f|Kirschen|cherry|cherries
Pfirsich|m|Pfirsiche|peach|peaches
Gurke|f|Gurken|cucumber|cucumbers
Zwiebel|f|Zwiebeln|onion|onions
Pilz|m|Pilze|mushroom|mushrooms
Brezel|f|Brezeln|pretzel|pretzels
Melone|f|Melonen|melon|melons
Hamburger|m|Hamburger|hamburger|hamburgers
Pfannkuchen|m|Pfannkuchen|pancake|pancakes
""",
    "readable": """
Buch|n|Bücher|book|books
Zeitung|f|Zeitungen|newspaper|newspapers
Brief|m|Briefe|letter|letters
Zeitschrift|f|Zeitschriften|magazine|magazines
Geschichte|f|Geschichten|story|stories
Gedicht|n|Gedichte|poem|poems
Landkarte|f|Landkarten|map|maps
""",
    "thing": """
Ball|m|Bälle|ball|balls
Tasche|f|Taschen|bag|bags
Schlüssel|m|Schlüssel|key|keys
Stift|m|Stifte|pen|pens
Bleistift|m|Bleistifte|pencil|pencils
Handy|n|Handys|phone|phones
Computer|m|Computer|computer|computers
Lampe|f|Lampen|lamp|lamps
Uhr|f|Uhren|clock|clocks
Fahrrad|n|Fahrräder|bicycle|bicycles
Auto|n|Autos|car|cars
Koffer|m|Koffer|suitcase|suitcases
Regenschirm|m|Regenschirme|umbrella|umbrellas
Teller|m|Teller|plate|plates
Messer|n|Messer|knife|knives
Gabel|f|Gabeln|fork|forks
Löffel|m|Löffel|spoon|spoons
Tasse|f|Tassen|cup|cups
Flasche|f|Flaschen|bottle|bottles
Spielzeug|n|Spielzeuge|toy|toys
Puppe|f|Puppen|doll|dolls
Blume|f|Blumen|flower|flowers
Geschenk|n|Geschenke|present|presents
Bild|n|Bilder|picture|pictures
Foto|n|Fotos|photo|photos
Kamera|f|Kameras|camera|cameras
Ring|m|Ringe|ring|rings
Kerze|f|Kerzen|candle|candles
Korb|m|Körbe|basket|baskets
Kiste|f|Kisten|box|boxes
Gitarre|f|Gitarren|guitar|guitars
Trommel|f|Trommeln|drum|drums
Fahrkarte|f|Fahrkarten|ticket|tickets
Rucksack|m|Rucksäcke|backpack|backpacks
Spiegel|m|Spiegel|mirror|mirrors
Kissen|n|Kissen|pillow|pillows
Decke|f|Decken|blanket|blankets
Besen|m|Besen|broom|brooms
Eimer|m|Eimer|bucket|buckets
Hammer|m|Hämmer|hammer|hammers
Seil|n|Seile|rope|ropes
Drachen|m|Drachen|kite|kites
Boot|n|Boote|boat|boats
""",
    "clothing": """
Hut|m|Hüte|hat|hats
Mantel|m|Mäntel|coat|coats
Jacke|f|Jacken|jacket|jackets
Kleid|n|Kleider|dress|dresses
Hemd|n|Hemden|shirt|shirts
Rock|m|Röcke|skirt|skirts
Schuh|m|Schuhe|shoe|shoes
Stiefel|m|Stiefel|boot|boots
Mütze|f|Mützen|cap|caps
Schal|m|Schals|scarf|scarves
Pullover|m|Pullover|sweater|sweaters
Handschuh|m|Handschuhe|glove|gloves
Krawatte|f|Krawatten|tie|ties
Gürtel|m|Gürtel|belt|belts
""",
    "furniture": """
Tisch|m|Tische|table|tables
Stuhl|m|Stühle|chair|chairs
Bett|n|Betten|bed|beds
Sofa|n|Sofas|sofa|sofas
Schrank|m|Schränke|cupboard|cupboards
Regal|n|Regale|shelf|shelves
Fenster|n|Fenster|window|windows
Tür|f|Türen|door|doors
Baum|m|Bäume|tree|trees
Brücke|f|Brücken|bridge|bridges
Bank|f|Bänke|bench|benches
Stein|m|Steine|stone|stones
Teppich|m|Teppiche|carpet|carpets
Kühlschrank|m|Kühlschränke|fridge|fridges
Ofen|m|Öfen|oven|ovens
Zaun|m|Zäune|fence|fences
""",
    "place": """
Park|m|Parks|park|parks
Garten|m|Gärten|garden|gardens
Küche|f|Küchen|kitchen|kitchens
Haus|n|Häuser|house|houses
Wald|m|Wälder|forest|forests
Stadt|f|Städte|city|cities
Büro|n|Büros|office|offices
Zimmer|n|Zimmer|room|rooms
Restaurant|n|Restaurants|restaurant|restaurants
Supermarkt|m|Supermärkte|supermarket|supermarkets
Bibliothek|f|Bibliotheken|library|libraries
Museum|n|Museen|museum|museums
Krankenhaus|n|Krankenhäuser|hospital|hospitals
Kirche|f|Kirchen|church|churches
Schule|f|Schulen|school|schools
Bäckerei|f|Bäckereien|bakery|bakeries
Hotel|n|Hotels|hotel|hotels
Dorf|n|Dörfer|village|villages
Kino|n|Kinos|cinema|cinemas
Theater|n|Theater|theater|theaters
Zoo|m|Zoos|zoo|zoos
Bahnhof|m|Bahnhöfe|train station|train stations
Flughafen|m|Flughäfen|airport|airports
Laden|m|Läden|shop|shops
Schwimmbad|n|Schwimmbäder|swimming pool|swimming pools
Badezimmer|n|Badezimmer|bathroom|bathrooms
Schlafzimmer|n|Schlafzimmer|bedroom|bedrooms
Wohnzimmer|n|Wohnzimmer|living room|living rooms
Keller|m|Keller|cellar|cellars
Stall|m|Ställe|stable|stables
Café|n|Cafés|cafe|cafes
""",
}

# predicative | attributive stem | English. Grouped by what they describe.
ADJECTIVES = {
    "any": "groß|groß|big klein|klein|small alt|alt|old schön|schön|beautiful",
    "color": "rot|rot|red blau|blau|blue grün|grün|green gelb|gelb|yellow schwarz|schwarz|black "
    "weiß|weiß|white braun|braun|brown grau|grau|gray",
    "animate": "jung|jung|young müde|müd|tired glücklich|glücklich|happy traurig|traurig|sad "
    "hungrig|hungrig|hungry freundlich|freundlich|friendly lustig|lustig|funny krank|krank|sick "
    "stark|stark|strong klug|klug|clever nett|nett|nice faul|faul|lazy laut|laut|loud "
    "leise|leis|quiet mutig|mutig|brave neugierig|neugierig|curious wütend|wütend|angry "
    "schnell|schnell|fast langsam|langsam|slow hübsch|hübsch|pretty",
    "thing": "neu|neu|new teuer|teur|expensive billig|billig|cheap schwer|schwer|heavy "
    "leicht|leicht|light sauber|sauber|clean schmutzig|schmutzig|dirty dunkel|dunkl|dark "
    "hell|hell|bright warm|warm|warm kalt|kalt|cold weich|weich|soft hart|hart|hard "
    "lang|lang|long kurz|kurz|short",
    "food": "frisch|frisch|fresh süß|süß|sweet lecker|lecker|delicious reif|reif|ripe "
    "sauer|saur|sour heiß|heiß|hot",
    "readable": "interessant|interessant|interesting spannend|spannend|exciting "
    "langweilig|langweilig|boring",
}

# German present tense ich du er/sie wir ihr sie | English base | English 3rd singular | subjects
# (a: people and animals, h: people) | objects: accusative categories ("?" before them: optional),
# "give" (dative + accusative), "dat" (dative only), "to" (in + accusative place), or nothing.
VERBS = """
schlafe schläfst schläft schlafen schlaft schlafen|sleep|sleeps|a|
spiele spielst spielt spielen spielt spielen|play|plays|a|
schwimme schwimmst schwimmt schwimmen schwimmt schwimmen|swim|swims|a|
sitze sitzt sitzt sitzen sitzt sitzen|sit|sits|a|
warte wartest wartet warten wartet warten|wait|waits|a|
lache lachst lacht lachen lacht lachen|laugh|laughs|h|
singe singst singt singen singt singen|sing|sings|h|
tanze tanzt tanzt tanzen tanzt tanzen|dance|dances|h|
arbeite arbeitest arbeitet arbeiten arbeitet arbeiten|work|works|h|
weine weinst weint weinen weint weinen|cry|cries|h|
koche kochst kocht kochen kocht kochen|cook|cooks|h|?food
lese liest liest lesen lest lesen|read|reads|h|?readable
schreibe schreibst schreibt schreiben schreibt schreiben|write|writes|h|?readable
esse isst isst essen esst essen|eat|eats|a|?food
gehe gehst geht gehen geht gehen|go|goes|a|to
laufe läufst läuft laufen lauft laufen|run|runs|a|?to
sehe siehst sieht sehen seht sehen|see|sees|a|person animal thing food place furniture
habe hast hat haben habt haben|have|has|h|animal thing clothing food readable
kaufe kaufst kauft kaufen kauft kaufen|buy|buys|h|thing clothing food readable
suche suchst sucht suchen sucht suchen|look for|looks for|a|person animal thing clothing
finde findest findet finden findet finden|find|finds|a|animal thing clothing readable
brauche brauchst braucht brauchen braucht brauchen|need|needs|h|thing clothing
mag magst mag mögen mögt mögen|like|likes|a|person animal food place readable clothing
liebe liebst liebt lieben liebt lieben|love|loves|a|person animal food
besuche besuchst besucht besuchen besucht besuchen|visit|visits|h|person place
male malst malt malen malt malen|paint|paints|h|animal thing furniture
trage trägst trägt tragen tragt tragen|wear|wears|h|clothing
wasche wäschst wäscht waschen wascht waschen|wash|washes|h|animal clothing thing
nehme nimmst nimmt nehmen nehmt nehmen|take|takes|h|thing food readable
füttere fütterst füttert füttern füttert füttern|feed|feeds|h|animal
frage fragst fragt fragen fragt fragen|ask|asks|h|person
höre hörst hört hören hört hören|hear|hears|a|person animal
rufe rufst ruft rufen ruft rufen|call|calls|h|person animal
fange fängst fängt fangen fangt fangen|catch|catches|a|animal
zeichne zeichnest zeichnet zeichnen zeichnet zeichnen|draw|draws|h|animal thing furniture
vergesse vergisst vergisst vergessen vergesst vergessen|forget|forgets|h|thing clothing
gebe gibst gibt geben gebt geben|give|gives|h|give
zeige zeigst zeigt zeigen zeigt zeigen|show|shows|h|give
bringe bringst bringt bringen bringt bringen|bring|brings|h|give
schicke schickst schickt schicken schickt schicken|send|sends|h|give
helfe hilfst hilft helfen helft helfen|help|helps|h|dat
danke dankst dankt danken dankt danken|thank|thanks|h|dat
folge folgst folgt folgen folgt folgen|follow|follows|a|dat
antworte antwortest antwortet antworten antwortet antworten|answer|answers|h|dat
"""

FIRST_NAMES = (
    "Anna Maria Lena Laura Julia Sophie Emma Mia Lisa Sarah Hannah Lea Clara Nina Eva Paul Max "
    "Lukas Felix Jonas Leon Tim Jan Tom Ben Finn Noah Elias David Peter Thomas Michael Stefan "
    "Markus Daniel Martin Frank Karl Otto"
)
SURNAMES = "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann"

DAYS = "Montag|Monday Dienstag|Tuesday Mittwoch|Wednesday Donnerstag|Thursday Freitag|Friday "
DAYS += "Samstag|Saturday Sonntag|Sunday"
MONTHS = "Januar|January Februar|February März|March April|April Mai|May Juni|June Juli|July "
MONTHS += "August|August September|September Oktober|October November|November Dezember|December"
SEASONS = "Frühling|spring Sommer|summer Herbst|autumn Winter|winter"
NUMBERS = (
    "null|zero eins|one zwei|two drei|three vier|four fünf|five sechs|six sieben|seven acht|eight "
    "neun|nine zehn|ten elf|eleven zwölf|twelve dreizehn|thirteen vierzehn|fourteen "
    "fünfzehn|fifteen sechzehn|sixteen siebzehn|seventeen achtzehn|eighteen neunzehn|nineteen "
    "zwanzig|twenty"
)
TENS = "dreißig|thirty vierzig|forty fünfzig|fifty sechzig|sixty"

GREETINGS = """
Guten Morgen|Good morning
Guten Tag|Good afternoon
Guten Abend|Good evening
Gute Nacht|Good night
Hallo|Hello
Tschüss|Bye
Auf Wiedersehen|Goodbye
Bis später|See you later
Bis morgen|See you tomorrow
Bis bald|See you soon
Willkommen|Welcome
Schönes Wochenende|Have a nice weekend
Schönen Tag noch|Have a nice day
Gute Reise|Have a good trip
Viel Glück|Good luck
Alles Gute|All the best
Alles Gute zum Geburtstag|Happy birthday
Frohe Weihnachten|Merry Christmas
Frohes neues Jahr|Happy New Year
Gute Besserung|Get well soon
Guten Appetit|Enjoy your meal
Prost|Cheers
Herzlichen Glückwunsch|Congratulations
"""

# Questions that may follow a greeting ("Guten Morgen, wie geht es dir?").
QUESTIONS = """
Wie geht es dir?|How are you?
Wie geht es Ihnen?|How are you?
Wie heißt du?|What is your name?
Woher kommst du?|Where are you from?
Wo wohnst du?|Where do you live?
Wie alt bist du?|How old are you?
Wie spät ist es?|What time is it?
Was machst du?|What are you doing?
Hast du Hunger?|Are you hungry?
Hast du Zeit?|Do you have time?
Wo bist du?|Where are you?
Wann kommst du?|When are you coming?
Kannst du mir helfen?|Can you help me?
Sprichst du Deutsch?|Do you speak German?
Sprechen Sie Englisch?|Do you speak English?
Was möchtest du?|What would you like?
Wie ist das Wetter?|What is the weather like?
"""

PHRASES = """
Danke|Thank you
Danke schön|Thanks a lot
Vielen Dank|Thank you very much
Bitte|Please
Gern geschehen|You're welcome
Entschuldigung|Excuse me
Es tut mir leid|I am sorry
Kein Problem|No problem
Ja|Yes
Nein|No
Vielleicht|Maybe
Natürlich|Of course
Alles klar|All right
Genau|Exactly
Sehr gut|Very good
Keine Ahnung|No idea
Moment, bitte|One moment, please
Noch einmal, bitte|Once more, please
Langsamer, bitte|More slowly, please
Die Rechnung, bitte|The bill, please
Einen Kaffee, bitte|A coffee, please
Ein Bier, bitte|A beer, please
Ein Glas Wasser, bitte|A glass of water, please
Hilfe!|Help!
Pass auf!|Watch out!
Komm her!|Come here!
Warum?|Why?
Wie bitte?|Pardon?
Was ist das?|What is that?
Wer ist das?|Who is that?
Wo ist die Toilette?|Where is the toilet?
Wie viel kostet das?|How much does that cost?
Können Sie mir helfen?|Can you help me?
Mir geht es gut.|I am fine.
Mir geht es gut, danke.|I am fine, thank you.
Und dir?|And you?
Ich komme aus Deutschland.|I am from Germany.
Ich spreche ein bisschen Deutsch.|I speak a little German.
Ich weiß nicht.|I do not know.
Ich verstehe.|I understand.
Ich verstehe nicht.|I do not understand.
Ich habe Hunger.|I am hungry.
Ich habe Durst.|I am thirsty.
Ich liebe dich.|I love you.
Ich vermisse dich.|I miss you.
Ich habe eine Frage.|I have a question.
Das ist gut.|That is good.
Das ist toll.|That is great.
Das ist richtig.|That is right.
Das ist falsch.|That is wrong.
Das schmeckt gut.|That tastes good.
Ich bin zu Hause.|I am at home.
Ich gehe nach Hause.|I am going home.
Ich muss gehen.|I have to go.
Das Wetter ist schön.|The weather is nice.
Es regnet.|It is raining.
Es schneit.|It is snowing.
Die Sonne scheint.|The sun is shining.
Es ist kalt.|It is cold.
Es ist warm.|It is warm.
Es ist heiß.|It is hot.
"""


def table(text: str) -> list[list[str]]:
    """Rows of a '|'-separated block (one entry per line, or per space for one-line blocks)."""
    rows = text.strip().splitlines() if "\n" in text.strip() else text.split()
    return [row.split("|") for row in rows if row.strip()]
